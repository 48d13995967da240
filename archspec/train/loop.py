"""One training run: the spec's module (archspec.build), the data on the device, epochs of steps,
an evaluation after each epoch, a checkpoint after each epoch.

A step's batch is a slice of a permutation that depends only on (seed, epoch), and its augmentation
draws come from a generator seeded the same way, so an epoch computes the same steps whether the run
was resumed or not, and whether one process or N took the batch (each takes its contiguous share of
the global batch; DDP's averaged gradients then equal one process's). The learning rate is a function
of the step. The last incomplete batch of an epoch is dropped, so every step sees the full batch.

The dataset's task (data.TASKS) says what a sample is and what the spec must output: an image and a
class (output [classes]), or a window of token ids and the next token at every position (input
[seq_len], output [seq_len, vocabulary]). The loss is cross-entropy over the last axis either way,
averaged over images or over tokens, and the metrics count the same units.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
import hashlib
import math
import os
from pathlib import Path
import random
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F

from archspec import collector, pipeline
from archspec.errors import ArchspecError, SpecErrors
from archspec.limits import DATA
from archspec.train import (
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    STRATEGIES,
    TrainOptions,
    augment as aug,
    checkpoint,
    data,
    datasets,
)
from archspec.train.metrics import EpochMetrics, EvalResult, Tally
from archspec.train.report import Progress, RunLog, epoch_line
from archspec.train.result import RunResult

BAD_OPTION = "AS913"  # usage: exit 2
NO_DEVICE = "AS914"
STEP_FAILED = "AS917"
EVAL_BATCH = 256


@dataclass(frozen=True)
class Rank:
    """This process's place in a distributed run (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class Model:
    """The built module with what the loop needs to know about it."""

    module: torch.nn.Module
    name: str
    params: int
    shape: tuple[int, ...]  # the spec's input: (C, H, W), or (seq_len,) for a text


def check(options: TrainOptions) -> None:
    """Option values, before anything is loaded or built."""
    if options.optimizer not in OPTIMIZERS:
        raise ArchspecError(BAD_OPTION, f"--optimizer {options.optimizer!r}: use {' or '.join(OPTIMIZERS)}")
    if options.schedule not in SCHEDULES:
        raise ArchspecError(BAD_OPTION, f"--schedule {options.schedule!r}: use {', '.join(SCHEDULES)}")
    if options.precision not in PRECISIONS:
        raise ArchspecError(BAD_OPTION, f"--precision {options.precision!r}: use {' or '.join(PRECISIONS)}")
    if options.epochs < 1 or options.batch_size < 1 or options.nproc < 1:
        raise ArchspecError(BAD_OPTION, "--epochs, --batch-size and --nproc must be at least 1")
    if options.strategy not in STRATEGIES:
        raise ArchspecError(BAD_OPTION, f"--strategy {options.strategy!r}: use {' or '.join(STRATEGIES)}")
    if options.strategy == "fsdp" and options.nproc < 2:
        raise ArchspecError(
            BAD_OPTION,
            "--strategy fsdp shards the model over processes: give --nproc 2 or more "
            "(or start archspec train with torchrun)",
        )
    if options.batch_size % options.nproc:
        raise ArchspecError(
            BAD_OPTION,
            f"--batch-size {options.batch_size} is the global batch: it must divide by --nproc {options.nproc}",
        )
    if not (options.learning_rate > 0 and math.isfinite(options.learning_rate)) or not (0 <= options.decay < 1e3):
        raise ArchspecError(BAD_OPTION, "--lr must be a positive number and --weight-decay at least 0")
    if not 0 <= options.warmup_epochs < options.epochs:
        raise ArchspecError(
            BAD_OPTION,
            f"--warmup-epochs {options.warmup_epochs:g}: give at least 0 and fewer than --epochs ({options.epochs})",
        )
    if not 0 <= options.label_smoothing < 1:
        raise ArchspecError(
            BAD_OPTION,
            f"--label-smoothing {options.label_smoothing:g}: give a value from 0 up to (not including) 1, e.g. 0.1",
        )
    if options.threads is not None and options.threads < 1:
        raise ArchspecError(BAD_OPTION, "--threads must be at least 1")
    datasets.check_options(options.workers, options.bad_images)
    aug.parse(options.augment)
    data.parse(options.data)


def device_of(text: str, rank: Rank = Rank()) -> torch.device:
    try:
        device = torch.device(text)
    except RuntimeError:
        raise ArchspecError(BAD_OPTION, f"--device {text!r}: use cpu or cuda (cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ArchspecError(
                NO_DEVICE,
                f"--device {text}: no CUDA device is available here (torch "
                f"{torch.__version__}, CUDA build: {torch.version.cuda or 'none'}); use --device cpu",
            )
        if rank.world > 1:  # one GPU per process
            device = torch.device("cuda", rank.local)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ArchspecError(NO_DEVICE, f"no CUDA device {device.index}: {torch.cuda.device_count()} visible")
    elif device.type != "cpu":
        raise ArchspecError(BAD_OPTION, f"--device {text!r}: use cpu or cuda (cuda:N)")
    return device


def build_model(
    spec: str, overrides: dict[str, Any], variant: str | None, classes: int, seed: int, task: str = data.CLASSIFY
) -> Model:
    """Build the spec's module as a user would; set num_classes (vocab_size for a text) from the data
    unless --set gave it."""
    if task == data.NEXT_TOKEN:
        return _build_language_model(spec, overrides, variant, classes, seed)
    compiled = pipeline.compile_spec(spec, overrides, variant=variant)
    out = compiled.costs.output
    if tuple(out) != (classes,):
        if "num_classes" in overrides or len(out) != 1:
            raise ArchspecError(
                BAD_OPTION,
                f"the spec outputs {list(out)} but the data has {classes} classes; "
                f"--set num_classes={classes} (or a spec with a {classes}-way head)",
            )
        overrides = {**overrides, "num_classes": classes}
        try:
            compiled = pipeline.compile_spec(spec, overrides, variant=variant)
        except SpecErrors as exc:
            if any(e.code == "AS206" for e in exc.errors):  # the spec has no num_classes parameter
                raise ArchspecError(
                    BAD_OPTION,
                    f"the spec outputs {list(out)} but the data has {classes} classes, and it "
                    "has no num_classes parameter to change; use a spec whose head fits the data",
                ) from None
            raise
    shape = tuple(compiled.costs.input)
    if len(shape) != 3:
        raise ArchspecError(BAD_OPTION, f"the spec takes input {list(shape)}; training needs images (C, H, W)")
    module = pipeline.build(spec, seed=seed, variant=variant, **overrides)
    return Model(module, compiled.graph.name, compiled.costs.params, (int(shape[0]), int(shape[1]), int(shape[2])))


def _build_language_model(
    spec: str, overrides: dict[str, Any], variant: str | None, vocabulary: int, seed: int
) -> Model:
    """A spec that takes token ids [seq_len] and outputs logits [seq_len, vocabulary]; a spec with a
    vocab_size parameter takes the data's vocabulary unless --set gave one."""
    compiled = pipeline.compile_spec(spec, overrides, variant=variant)
    shape, out = tuple(compiled.costs.input), tuple(compiled.costs.output)
    if len(shape) != 1:
        raise ArchspecError(
            BAD_OPTION,
            f"the spec takes input {list(shape)}; a text trains a language model, which "
            "takes token ids [seq_len] (e.g. specs/gpt2.yaml)",
        )
    if (
        len(out) == 2
        and out[1] != vocabulary
        and "vocab_size" not in overrides
        and "vocab_size" in compiled.resolved.spec.params
    ):
        overrides = {**overrides, "vocab_size": vocabulary}
        compiled = pipeline.compile_spec(spec, overrides, variant=variant)
        out = tuple(compiled.costs.output)
    if out != (shape[0], vocabulary):
        raise ArchspecError(
            BAD_OPTION,
            f"the spec outputs {list(out)} but next-token prediction needs logits "
            f"[seq_len, vocabulary] = [{shape[0]}, {vocabulary}] (a text's vocabulary is its {vocabulary} "
            f"byte values): --set vocab_size={vocabulary}, or a spec whose head fits",
        )
    module = pipeline.build(spec, seed=seed, variant=variant, **overrides)
    return Model(module, compiled.graph.name, compiled.costs.params, (int(shape[0]),))


def spec_input(spec: str, overrides: dict[str, Any], variant: str | None) -> tuple[int, ...]:
    return tuple(pipeline.compile_spec(spec, overrides, variant=variant).costs.input)


def load_data(text: str, shape: tuple[int, ...], stream: bool = False, bad_images: str = "fail") -> data.Dataset:
    """DATA for a spec taking `shape`: image folders are resized to its (H, W) (listed only, with `stream`),
    a text cut into its seq_len."""
    return data.load(
        text,
        (int(shape[1]), int(shape[2])) if len(shape) == 3 else None,
        int(shape[0]) if len(shape) == 1 else None,
        stream,
        bad_images,
    )


def batch_of(split: data.Split, index: torch.Tensor, model: Model, text: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's input and targets for samples `index` of `split`, before augmentation: images in [0, 1]
    at the spec's size, or token ids (int64) and the next tokens."""
    if text:
        return split.images[index].long(), split.labels[index].long()
    return data.prepare(split.images[index], model.shape), split.labels[index]  # type: ignore[arg-type]


def derived_seed(seed: int, epoch: int, purpose: str) -> int:
    """A 63-bit seed for one purpose in one epoch, the same on every machine."""
    digest = hashlib.blake2b(f"{seed}:{epoch}:{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def learning_rate(options: TrainOptions, step: int, epoch: int, steps_per_epoch: int) -> float:
    """The rate of optimizer step `step` (0-based) in `epoch`: a linear warm-up over `warmup_epochs` (timm's
    and torchvision's recipes ramp per step), then the schedule; cosine decays over the steps after it."""
    base = options.learning_rate
    warm = round(options.warmup_epochs * steps_per_epoch)
    if step < warm:
        return base * (step + 1) / warm
    if options.schedule == "cosine":
        total = max(1, options.epochs * steps_per_epoch - warm)
        return base * 0.5 * (1 + math.cos(math.pi * min(step - warm, total) / total))
    if options.schedule == "step":  # x0.1 at half and at three quarters of the epochs
        return base * 0.1 ** ((epoch >= math.ceil(options.epochs / 2)) + (epoch >= math.ceil(options.epochs * 3 / 4)))
    return base


def make_optimizer(options: TrainOptions, module: torch.nn.Module) -> torch.optim.Optimizer:
    # No weight decay on biases and norm parameters (1-D tensors), as the usual recipes do.
    decay = [p for p in module.parameters() if p.requires_grad and p.ndim > 1]
    rest = [p for p in module.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": options.decay}, {"params": rest, "weight_decay": 0.0}]
    with collector.paused():  # the first optimizer imports torch._dynamo (archspec.collector)
        if options.optimizer == "adamw":
            return torch.optim.AdamW(groups, lr=options.learning_rate)
        return torch.optim.SGD(groups, lr=options.learning_rate, momentum=0.9)


def my_share(batch_size: int, rank: Rank) -> slice:
    """This process's contiguous share of a global batch (of its indices, and of its augmentation draws)."""
    share = batch_size // rank.world
    return slice(rank.rank * share, (rank.rank + 1) * share)


def epoch_batches(options: TrainOptions, epoch: int, samples: int, steps: int, rank: Rank) -> list[torch.Tensor]:
    """This process's index batches of `epoch`: its share of each global batch of a permutation that depends
    only on (seed, epoch)."""
    order = torch.randperm(samples, generator=torch.Generator().manual_seed(derived_seed(options.seed, epoch, "order")))
    mine = my_share(options.batch_size, rank)
    return [order[i * options.batch_size : (i + 1) * options.batch_size][mine] for i in range(steps)]


def run_folder(options: TrainOptions, name: str) -> Path:
    return Path(options.out) if options.out else Path("runs") / name


def run(options: TrainOptions, rank: Rank = Rank()) -> RunResult:
    check(options)
    device = device_of(options.device, rank)
    if options.threads:
        torch.set_num_threads(options.threads)
    augments = aug.parse(options.augment)
    shape = spec_input(options.spec, options.overrides, options.variant)
    dataset = load_data(options.data, shape, stream=True, bad_images=options.bad_images)
    model = build_model(
        options.spec, options.overrides, options.variant, len(dataset.classes), options.seed, dataset.task
    )
    if dataset.text and augments:
        raise ArchspecError(BAD_OPTION, f"--augment {options.augment!r}: augmentations apply to images, not to a text")
    if not dataset.text:
        aug.check(augments, model.shape)  # type: ignore[arg-type]
    # `..` resolved first, as creating the missing parents would: x/../../f must be checked as f
    folder = Path(os.path.abspath(run_folder(options, model.name)))
    if os.path.lexists(folder) and not folder.is_dir():
        raise ArchspecError(BAD_OPTION, f"--out {folder} exists and is not a folder; give a folder for the run")
    resuming = options.resume and checkpoint.has_run(folder)
    if checkpoint.has_run(folder) and not options.resume:
        raise ArchspecError(
            BAD_OPTION, f"{folder}/ already holds a run; add --resume to continue it, or give another --out"
        )
    if options.resume and not resuming and rank.main and not options.quiet:
        print(f"no checkpoint in {folder}/ yet: starting from epoch 1", file=sys.stderr)
    if resuming:
        checkpoint.check_options(folder, options)

    train_set, test_set = (
        split.to(device) if dataset.text else data.fit(split.to(device), model.shape)  # type: ignore[arg-type]
        for split in (dataset.train, dataset.test)
    )
    steps = len(train_set) // options.batch_size
    if steps == 0:
        raise ArchspecError(
            BAD_OPTION,
            f"--batch-size {options.batch_size} is larger than the training set "
            f"({len(train_set)} {'windows' if dataset.text else 'images'})",
        )
    workers = options.workers if options.workers is not None else datasets.default_workers(rank.world)
    feed, test_feed = (
        datasets.Feed(
            split,
            model.shape,
            device,
            dataset.text,
            workers,
            options.bad_images,
            options.seed,
            persistent=split is train_set,
            batch=batch,
        )
        for split, batch in ((train_set, options.batch_size // rank.world), (test_set, EVAL_BATCH))
    )
    # A new run's first pass starts decoding now, while the optimizer is made (the first one imports
    # torch._dynamo: 1.5 s that the workers spend filling their prefetch); a resumed run's starts in its loop.
    started = None if resuming else feed(epoch_batches(options, 0, len(train_set), steps, rank))

    module = model.module.to(device).train()
    layout = torch.channels_last if options.channels_last else torch.contiguous_format
    if options.channels_last:
        module = module.to(memory_format=torch.channels_last)
    fsdp = rank.world > 1 and options.strategy == "fsdp"
    if fsdp:  # before the optimizer is made: sharding replaces the parameters
        from archspec.train import sharded

        if device.type == "cuda":
            module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
        sharded.shard(module)
    optimizer = make_optimizer(options, module)
    torch.manual_seed(options.seed)  # dropout and anything else drawing from the global generator
    random.seed(options.seed)
    saved = (
        checkpoint.restore(folder, module, optimizer, sharded.load if fsdp else None)
        if resuming
        else checkpoint.Saved(0, 0, [], 0.0)
    )
    forward: Any = module
    if rank.world > 1 and device.type == "cuda" and not fsdp:
        module = forward = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if rank.world > 1 and not fsdp:
        from torch.nn.parallel import DistributedDataParallel

        forward = DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
    if options.compile:
        forward = torch.compile(forward)
    autocast = (
        (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if options.precision == "bf16" else nullcontext
    )
    history, step, seconds = list(saved.history), saved.step, saved.seconds
    log = RunLog(folder, steps, saved.epoch) if rank.main else None
    if rank.main and not options.quiet:
        where = f"{rank.world} processes ({options.strategy})" if rank.world > 1 else str(device)
        print(
            f"{model.name}: {model.params:,} params on {where}; {data.describe(dataset)}, {feed.describe()}; run folder {folder}/",
            file=sys.stderr,
        )
    for epoch in range(saved.epoch, options.epochs):
        start = time.perf_counter()
        tally = Tally(len(dataset.classes), device)
        draws = torch.Generator().manual_seed(derived_seed(options.seed, epoch, "augment"))
        progress = Progress(
            epoch + 1,
            options.epochs,
            steps,
            options.batch_size,
            enabled=rank.main and not options.quiet,
            unit="seq" if dataset.text else "img",
        )
        share = options.batch_size // rank.world
        lr = learning_rate(options, step, epoch, steps)
        mine = my_share(options.batch_size, rank)
        stream = (
            started
            if started is not None and epoch == 0
            else feed(epoch_batches(options, epoch, len(train_set), steps, rank))
        )
        for i, (x, y, kept) in enumerate(stream):  # kept: the batch's images not skipped (--bad-images)
            params = aug.draw(augments, options.batch_size, draws)
            if _skipped_everywhere(len(y) == 0, rank, options.bad_images, device):  # --bad-images skip left none
                step += 1
                continue
            if not dataset.text:
                x = data.normalize(aug.apply(x, augments, [p[mine][kept] for p in params])).contiguous(
                    memory_format=layout
                )
            lr = learning_rate(options, step, epoch, steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            try:
                with autocast():
                    logits = forward(x).flatten(0, -2)  # [N, classes], or [N * seq_len, vocabulary]
                y = y.flatten()
                loss = F.cross_entropy(logits.float(), y, label_smoothing=options.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            except torch.cuda.OutOfMemoryError:
                raise ArchspecError(
                    STEP_FAILED, f"out of memory on {device} at batch {share}; use a smaller --batch-size"
                ) from None
            except (RuntimeError, ValueError, TypeError) as exc:
                first = (str(exc).strip().splitlines() or [""])[0]
                raise ArchspecError(STEP_FAILED, f"the training step failed: {type(exc).__name__}: {first}") from None
            tally.add(logits.detach().float(), y, loss.detach() * y.shape[0])
            step += 1
            progress.update(i + 1)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_seconds = time.perf_counter() - start
        if rank.world > 1:
            import torch.distributed as dist

            sums = tally.sums.clone()
            dist.all_reduce(sums)
            tally.merged(sums)
        train_loss, train_acc, _ = tally.result()
        if not math.isfinite(train_loss):
            raise ArchspecError(
                STEP_FAILED,
                f"the training loss became {train_loss} in epoch {epoch + 1}; lower --lr (or use --precision fp32)",
            )
        # under FSDP every process takes part in each forward (the weights are gathered from all of them)
        result = (
            evaluate(module, test_feed, model, dataset, device, options.precision, confusion=False, layout=layout)
            if rank.main or fsdp
            else None
        )
        if fsdp:
            sharded.save(folder / checkpoint.sharded_name(epoch + 1), module, optimizer)
        seconds_epoch = time.perf_counter() - start
        if rank.main and result is not None:
            metrics = EpochMetrics(
                epoch + 1,
                train_loss,
                train_acc,
                result.loss,
                result.top1,
                result.top5,
                steps * options.batch_size / max(train_seconds, 1e-9),
                seconds_epoch,
                lr,
            )
            history.append(metrics)
            seconds += seconds_epoch
            checkpoint.save(
                folder, module, optimizer, options, checkpoint.Saved(epoch + 1, step, history, seconds), sharded=fsdp
            )
            if log is not None:
                log.epoch(history)
            if not options.quiet:
                print(epoch_line(metrics, options.epochs, "seq" if dataset.text else "img"), flush=True)
        if rank.world > 1:
            import torch.distributed as dist

            dist.barrier()
    if log is not None:
        log.close()
    weights = sharded.full_weights(module) if fsdp else None
    if rank.main:
        checkpoint.save_final(folder, module, weights)
    return RunResult(model.name, folder, dataset.name, options.augment, model.params, seconds, history, dataset.task)


def _skipped_everywhere(empty: bool, rank: Rank, bad_images: str, device: torch.device) -> bool:
    """Whether to skip this step because a process's share of the batch lost every image (--bad-images skip).
    Under DDP all processes must agree, or the others would wait for its gradients forever: one flag is
    all-reduced per step, only when images can be skipped."""
    if rank.world == 1 or bad_images != "skip":
        return empty
    import torch.distributed as dist

    flag = torch.tensor([float(empty)], device=device)
    dist.all_reduce(flag)
    return bool(flag.item() > 0)


@torch.no_grad()
def evaluate(
    module: torch.nn.Module,
    split: data.Split | datasets.Feed,
    model: Model,
    dataset: data.Dataset,
    device: torch.device,
    precision: str = "fp32",
    confusion: bool = True,
    layout: torch.memory_format = torch.contiguous_format,
) -> EvalResult:
    """Loss, top-1/top-5 and (optionally, for classes) the confusion matrix of `module` in eval mode on
    `split` of `dataset`: per image, or per token of a text (the loss in nats per token)."""
    was_training = module.training
    module.eval()
    classes = len(dataset.classes)
    tally = Tally(classes, device, confusion=confusion and not dataset.text)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    try:
        with autocast:
            feed = (
                split if isinstance(split, datasets.Feed) else datasets.Feed(split, model.shape, device, dataset.text)
            )
            for x, y, _ in feed(
                [torch.arange(start, min(start + EVAL_BATCH, len(split))) for start in range(0, len(split), EVAL_BATCH)]
            ):
                if not dataset.text:
                    x = data.normalize(x).contiguous(memory_format=layout)
                logits, y = module(x).float().flatten(0, -2), y.flatten()
                tally.add(logits, y, F.cross_entropy(logits, y, reduction="sum"))
    except (RuntimeError, ValueError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ArchspecError(STEP_FAILED, f"evaluation failed: {type(exc).__name__}: {first}") from None
    finally:
        module.train(was_training)
    loss, top1, top5 = tally.result()
    matrix = tally.confusion.tolist() if tally.confusion is not None else []
    return EvalResult(loss, top1, top5, tally.n, matrix, dataset.classes, dataset.task)


def evaluate_file(
    spec: str,
    weights: str,
    data_text: str,
    overrides: dict[str, Any],
    variant: str | None,
    device_text: str = "cpu",
    split: str = "test",
    precision: str = "fp32",
    workers: int | None = None,
    bad_images: str = "fail",
) -> EvalResult:
    """`archspec eval`: build the spec, load trained weights, evaluate on a split of DATA (an image folder
    streamed by `workers` decoding processes)."""
    if split not in ("test", "train"):
        raise ArchspecError(BAD_OPTION, f"--split {split!r}: use test or train")
    datasets.check_options(workers, bad_images)
    device = device_of(device_text)
    trained = checkpoint.run_options(Path(weights))
    if trained is not None and (trained.get("overrides") or {}, trained.get("variant")) != (overrides, variant):
        # The weights may still fit (a resolution changes no tensor), so this is a note, not an error.
        settings = ", ".join(f"{k}={v}" for k, v in (trained.get("overrides") or {}).items()) or "no --set"
        print(
            f"note: these weights were trained with {settings}"
            f"{' and --variant ' + str(trained['variant']) if trained.get('variant') else ''}; "
            "give the same --set/--variant to evaluate the network that was trained",
            file=sys.stderr,
        )
    dataset = load_data(data_text, spec_input(spec, overrides, variant), stream=True, bad_images=bad_images)
    model = build_model(spec, overrides, variant, len(dataset.classes), 0, dataset.task)
    path = Path(weights)
    checkpoint.load_weights(model.module, checkpoint.read_weights(path), path)
    chosen = (dataset.test if split == "test" else dataset.train).to(device)
    if not dataset.text:
        chosen = data.fit(chosen, model.shape)  # type: ignore[arg-type]
    feed = datasets.Feed(
        chosen,
        model.shape,
        device,
        dataset.text,
        datasets.default_workers() if workers is None else workers,
        bad_images,
        batch=EVAL_BATCH,  # what evaluate() asks for: the prefetch is sized for batches of that many
    )
    if not dataset.text and len(dataset.classes) > DATA.confusion_classes:
        print(
            f"note: no confusion matrix for {len(dataset.classes):,} classes (at most {DATA.confusion_classes:,}: "
            "DataLimits.confusion_classes, docs/limits.md)",
            file=sys.stderr,
        )
    return evaluate(model.module.to(device), feed, model, dataset, device, precision)
