"""Checkpoints: what a run folder holds, and resuming from it.

    checkpoint-EEEE.safetensors         the module's state dict after epoch EEEE (parameters and buffers)
    checkpoint-EEEE.state.safetensors   optimizer tensors (momentum, Adam moments) and the RNG states
    state.json                          epoch, step, the options that fix the result, metrics so far,
                                        optimizer scalars, Python's RNG state, and the two file names
    model.safetensors                   the final weights, written when the run ends (for `archspec eval`)
    checkpoint-EEEE.dcp/                under --strategy fsdp, in place of the first file and the optimizer
                                        tensors: torch.distributed.checkpoint's shards (archspec.train.sharded)
    metrics.csv, events.out.tfevents.*  what the run shows (archspec.train.report.RunLog)

Every file is written atomically (archspec.backends.artifacts), and state.json last: it is the commit
point, naming the two tensor files of its epoch, which are removed only after a newer state.json is in
place. A run killed at any instant therefore resumes from one consistent epoch. The data order and the
augmentation draws are functions of (seed, epoch), and the global RNG (dropout) is restored, so a
resumed run ends with the same weights as one never interrupted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
import json
from pathlib import Path
import random
import shutil
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load as load_tensors, save as save_tensors
import torch

from archspec.backends.artifacts import write_bytes_atomically
from archspec.errors import ArchspecError
from archspec.train import TrainOptions, run_folder
from archspec.train.metrics import EpochMetrics

STATE = "state.json"
FINAL = "model.safetensors"
FORMAT = 1
BAD_CHECKPOINT = "AS915"
# Options that fix the result of a run; a resume must give the same (epochs may grow, device may change).
FIXED = (
    "spec",
    "data",
    "overrides",
    "variant",
    "batch_size",
    "lr",
    "weight_decay",
    "optimizer",
    "schedule",
    "warmup_epochs",
    "label_smoothing",
    "augment",
    "precision",
    "seed",
)
# What a state.json written before an option existed means by its absence: the option's default.
_DEFAULTS = {f.name: f.default for f in fields(TrainOptions)}


@dataclass(frozen=True)
class Saved:
    epoch: int  # epochs completed
    step: int  # optimizer steps taken
    history: list[EpochMetrics]
    seconds: float  # training time so far, over every session of the run


def has_run(folder: Path) -> bool:
    run_folder.check_folder(folder)  # the first thing train and eval ask of a run folder: refuse a planted link
    return (folder / STATE).is_file()


def sharded_name(epoch: int) -> str:
    """The folder of an FSDP run's sharded checkpoint after `epoch` (archspec.train.sharded writes it)."""
    return f"checkpoint-{epoch:04d}.dcp"


def save(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    options: TrainOptions,
    saved: Saved,
    sharded: bool = False,
) -> None:
    """`sharded`: every process of an FSDP run has just written the weights and the optimizer state into
    the folder sharded_name(epoch); this writes the RNG states and state.json, which names that folder."""
    old = _read_json(folder / STATE) if has_run(folder) else None
    stem = f"checkpoint-{saved.epoch:04d}"
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    if not sharded:
        weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        write_bytes_atomically(
            folder / f"{stem}.safetensors", save_tensors(weights, metadata={"epoch": str(saved.epoch)})
        )
        tensors, scalars = _split_optimizer(optimizer.state_dict())
    tensors["rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, rng in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = rng
    write_bytes_atomically(
        folder / f"{stem}.state.safetensors", save_tensors(tensors, metadata={"epoch": str(saved.epoch)})
    )
    version, internal, gauss = random.getstate()
    state = {
        "format": FORMAT,
        "epoch": saved.epoch,
        "step": saved.step,
        "seconds": saved.seconds,
        "options": {k: v for k, v in asdict(options).items() if k in FIXED},
        "weights": sharded_name(saved.epoch) if sharded else f"{stem}.safetensors",
        "state": f"{stem}.state.safetensors",
        "optimizer": scalars,
        "python_random": [version, list(internal), gauss],
        "history": [m.to_json() for m in saved.history],
    }
    write_bytes_atomically(folder / STATE, (json.dumps(state, indent=1) + "\n").encode())
    if old is not None:  # the previous epoch's files, now that nothing points at them
        for key in ("weights", "state"):
            name = old.get(key)
            if isinstance(name, str) and name not in (state["weights"], state["state"]) and "/" not in name:
                if name.endswith(".dcp") and (folder / name).is_dir():
                    shutil.rmtree(folder / name, ignore_errors=True)
                else:
                    (folder / name).unlink(missing_ok=True)


def save_final(folder: Path, model: torch.nn.Module, weights: dict[str, torch.Tensor] | None = None) -> Path:
    """`weights`: the full state dict where `model` holds only this process's shards (FSDP)."""
    weights = {
        k: v.detach().contiguous().cpu() for k, v in (model.state_dict() if weights is None else weights).items()
    }
    write_bytes_atomically(folder / FINAL, save_tensors(weights))
    return folder / FINAL


def check_options(folder: Path, options: TrainOptions) -> None:
    """A resume continues the same run: refuse one whose options change its result."""
    stored = _read_json(folder / STATE).get("options", {})
    mine = {k: v for k, v in asdict(options).items() if k in FIXED}
    changed = [k for k in FIXED if json.loads(json.dumps(mine[k])) != stored.get(k, _DEFAULTS[k])]
    if changed:
        shown = ", ".join(f"{k} (was {stored.get(k)!r}, now {mine[k]!r})" for k in changed)
        raise ArchspecError(
            BAD_CHECKPOINT,
            f"--resume: the run in {folder} was started with other options: {shown}; "
            "give the same options, or a new --out to start another run",
        )


def restore(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    load_sharded: Callable[[Path, torch.nn.Module, torch.optim.Optimizer], None] | None = None,
) -> Saved:
    """Load the last checkpoint into `model` and `optimizer`, set the RNG states; return where it stopped.
    `load_sharded` (archspec.train.sharded.load) reads an FSDP run's sharded checkpoint; every process of
    that run calls this."""
    state = _read_json(folder / STATE)
    dcp_folder = folder / str(state.get("weights"))
    if dcp_folder.is_dir() != (load_sharded is not None):
        raise ArchspecError(
            BAD_CHECKPOINT,
            f"--resume: the run in {folder} was written by "
            f"{'--strategy fsdp' if dcp_folder.is_dir() else 'a run without --strategy fsdp'} (its "
            "checkpoint is sharded only under fsdp); resume it with the same --strategy",
        )
    try:
        weights = {} if load_sharded is not None else _read_tensors(folder / str(state["weights"]))
        extra = _read_tensors(folder / str(state["state"]))
        epoch, step = int(state["epoch"]), int(state["step"])
        history = [EpochMetrics.from_json(m) for m in state["history"]]
        version, internal, gauss = state["python_random"]
        scalars = state["optimizer"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ArchspecError(
            BAD_CHECKPOINT,
            f"{folder / STATE} is incomplete ({type(exc).__name__}: {exc}); start a new run with another --out",
        ) from None
    run_folder.check_tensors(extra, optimizer, scalars, load_sharded is not None, folder / str(state["state"]))
    try:
        if load_sharded is not None:
            load_sharded(dcp_folder, model, optimizer)
        else:
            load_weights(model, weights, folder / str(state["weights"]))
            optimizer.load_state_dict(_join_optimizer(extra, scalars))
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        where = dcp_folder if load_sharded is not None else folder / str(state["state"])
        raise ArchspecError(
            BAD_CHECKPOINT,
            f"{where} does not fit the model or the optimizer ({exc}); "
            "resume with the same spec, --set values and --optimizer, or start a new run",
        ) from None
    torch.set_rng_state(extra["rng/torch"])
    cuda = [
        extra[k]
        for k in sorted((k for k in extra if k.startswith("rng/cuda/")), key=lambda k: int(k.rsplit("/", 1)[1]))
    ]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    random.setstate((version, tuple(internal), gauss))
    return Saved(epoch, step, history, float(state.get("seconds", 0.0)))


def load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], path: Path) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    wrong = sorted(k for k in set(own) & set(weights) if own[k].shape != weights[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
        if unexpected:
            parts.append(f"not in the model {', '.join(unexpected[:4])}{' ...' if len(unexpected) > 4 else ''}")
        if wrong:
            k = wrong[0]
            parts.append(f"{k} is {list(weights[k].shape)}, the model has {list(own[k].shape)}")
        raise ArchspecError(
            BAD_CHECKPOINT,
            f"{path} does not fit the model ({'; '.join(parts)}); give the same spec and --set values as in training",
        )
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(weights[k])


def run_options(weights: Path) -> dict[str, Any] | None:
    """The options a run folder's state.json recorded, for weights that are that folder or one of its
    files; None for weights from anywhere else (or an unreadable state)."""
    state = (weights if weights.is_dir() else weights.parent) / STATE
    if not state.is_file():  # not a run's folder (and never a FIFO to block on)
        return None
    try:
        options = run_folder.read_state(json.loads(state.read_text()), state)["options"]
    except (OSError, ValueError, ArchspecError):
        return None
    return options if isinstance(options, dict) else None


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A .safetensors file, or a run folder (its final weights, else its last checkpoint)."""
    if path.is_dir():
        if (path / FINAL).is_file():
            return _read_tensors(path / FINAL)
        if has_run(path):
            last = path / str(_read_json(path / STATE).get("weights"))
            if last.is_dir() and last.name.endswith(".dcp"):  # an FSDP run's sharded checkpoint
                from archspec.train.sharded import read_full

                try:
                    return read_full(last)
                except RuntimeError as exc:
                    raise ArchspecError(
                        BAD_CHECKPOINT, f"{exc}; give the run's model.safetensors once it has ended"
                    ) from None
            return _read_tensors(last)
        raise ArchspecError(
            BAD_CHECKPOINT,
            f"{path}/ holds no {FINAL} and no {STATE}: give a run folder of archspec train, or a .safetensors file",
        )
    return _read_tensors(path)


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.exists() and not path.is_file():  # /dev/zero would be read for ever, a FIFO block
            raise ArchspecError(
                BAD_CHECKPOINT,
                f"{path} is not a regular file; give the .safetensors that archspec train wrote, or its run folder",
            )
        return load_tensors(path.read_bytes())
    except FileNotFoundError:
        raise ArchspecError(
            BAD_CHECKPOINT, f"no checkpoint file {path}; give the .safetensors that archspec train wrote"
        ) from None
    except OSError as exc:
        raise ArchspecError(BAD_CHECKPOINT, f"cannot read {path}: {exc.strerror or exc}") from None
    except (SafetensorError, ValueError) as exc:
        raise ArchspecError(
            BAD_CHECKPOINT,
            f"{path} is not a readable .safetensors file ({exc}); "
            "give the file archspec train wrote, or start a new run",
        ) from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ArchspecError(BAD_CHECKPOINT, f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArchspecError(
            BAD_CHECKPOINT, f"{path} is not valid JSON ({exc}); start a new run with another --out"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ArchspecError(
            BAD_CHECKPOINT,
            f"{path} is not a state file of this archspec (format {FORMAT}); start a new run with another --out",
        )
    return run_folder.read_state(data, path)  # every field checked before any is used


def _split_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The optimizer's state dict as tensors (for safetensors) and JSON scalars."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{index}/{key}"] = value.detach().contiguous().cpu()
            else:
                scalars["state"].setdefault(str(index), {})[key] = value
    return tensors, scalars


def _join_optimizer(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer/"):
            _, index, key = name.split("/", 2)
            state.setdefault(int(index), {})[key] = value
    for index, values in scalars.get("state", {}).items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": scalars["param_groups"]}
