"""Training, evaluation and comparison of compiled specs (`archspec train`, `eval`, `compare`).

    (here)       TrainOptions (what `archspec train` parses) and the entry points; torch-free
    data         DATA argument -> in-memory uint8 tensors: digits, CIFAR-10/100, MNIST idx, a text; folders listed
    datasets     batches for the loop: from memory, or an image folder streamed through DataLoader workers
    augment      batched tensor augmentations on the training device (flips, transpose, grayscale, ...)
    loop         one training run: build the spec's module, epochs of steps, evaluation, checkpoints
    metrics      loss, top-k accuracy, confusion matrix
    checkpoint   weights as .safetensors + a small JSON state, written atomically; resume
    distributed  --nproc N: the same loop under torch.distributed, launched by torchrun's elastic launcher
    sharded      --strategy fsdp: FSDP2 units of the built module, sharded checkpoints (DCP)
    result       RunResult, what a run returns (shared by loop and report, which do not import each other)
    report       progress bar, per-epoch lines, metrics.csv and TensorBoard events, the comparison outputs
    compare      several entries (spec variants, overrides, augmentations) trained one after another

The module trained is the one `archspec.build` returns, used as any user would use it. Importing this
package does not import torch; the functions below do.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "none")
PRECISIONS = ("fp32", "bf16")
STRATEGIES = ("ddp", "fsdp")  # how N processes share the work: replicated weights, or sharded (FSDP2)
MAX_NPROC = 64  # processes on one machine (--nproc); more machines: torchrun (docs/training.md)
DEFAULT_LR = {"sgd": 0.05, "adamw": 1e-3}
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adamw": 0.05}


@dataclass(frozen=True)
class TrainOptions:
    """One training run. `batch_size` is the global batch: with `nproc` processes each takes
    batch_size / nproc of it, so the run computes the same steps as one process would."""

    spec: str
    data: str
    overrides: dict[str, Any] = field(default_factory=dict)
    variant: str | None = None
    epochs: int = 10
    batch_size: int = 64
    lr: float | None = None  # None: DEFAULT_LR[optimizer]
    weight_decay: float | None = None  # None: DEFAULT_WEIGHT_DECAY[optimizer]
    optimizer: str = "sgd"
    schedule: str = "cosine"
    warmup_epochs: float = 0.0  # linear warm-up from 0 to lr over these epochs (per step), then the schedule
    label_smoothing: float = 0.0  # of the training loss (evaluation reports plain cross-entropy)
    augment: str = ""  # comma-separated, e.g. "hflip,brightness=0.75,crop"
    device: str = "cpu"
    precision: str = "fp32"
    compile: bool = False
    channels_last: bool = False  # NHWC module and batches (what tensor cores and cuDNN prefer); same results
    out: str | None = None  # run folder; None: runs/<spec name>
    resume: bool = False
    seed: int = 0
    nproc: int = 1
    strategy: str = "ddp"  # with nproc > 1 (or under torchrun): STRATEGIES
    threads: int | None = None  # CPU threads per process (torch.set_num_threads)
    workers: int | None = None  # image-decoding workers per process for a streamed folder; None: from the cores
    bad_images: str = "fail"  # an unreadable image of a folder: fail (AS912 naming it) or skip (counted)
    quiet: bool = False  # no progress bar and no per-epoch lines (compare prints its own)

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    @property
    def decay(self) -> float:
        return self.weight_decay if self.weight_decay is not None else DEFAULT_WEIGHT_DECAY[self.optimizer]

    def with_(self, **changes: Any) -> TrainOptions:
        return replace(self, **changes)


def train(options: TrainOptions) -> Any:
    """Train, write checkpoints into the run folder, return the run's `result.RunResult` (None on the
    processes other than rank 0 of a run started by torchrun). Without torch: AS810, naming the extra."""
    from archspec.extras import require

    require(["torch", "safetensors"], "archspec.train.train", "train")
    from archspec.train.distributed import join, launched_by_torchrun

    if launched_by_torchrun():
        return join(options)
    if options.nproc > 1:
        from archspec.train.distributed import launch

        return launch(options)
    from archspec.train.loop import run

    return run(options)


__all__ = ["MAX_NPROC", "OPTIMIZERS", "PRECISIONS", "SCHEDULES", "STRATEGIES", "TrainOptions", "train"]
