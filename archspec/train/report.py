"""What a run shows and writes: the progress bar, per-epoch lines, and the comparison outputs
(results.md, results.csv, loss.png, accuracy.png).

On a terminal the progress bar is tqdm's; into a file or a pipe a plain line at most every PLAIN_EVERY
seconds, so logs stay readable. Every run folder gets metrics.csv, and TensorBoard event files where
tensorboard is installed (RunLog).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
import shutil
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from archspec import collector
from archspec.backends.artifacts import write_bytes_atomically
from archspec.text import printable

if TYPE_CHECKING:
    from archspec.train.metrics import EpochMetrics, EvalResult
    from archspec.train.result import RunResult

PLAIN_EVERY = 10.0


class Progress:
    """One epoch's progress on `stream` (stderr by default): on a terminal tqdm's bar (samples done,
    samples per second, elapsed and remaining time), elsewhere a plain line every PLAIN_EVERY seconds."""

    def __init__(
        self,
        epoch: int,
        epochs: int,
        steps: int,
        batch: int,
        enabled: bool = True,
        stream: TextIO | None = None,
        unit: str = "img",
    ):
        self.stream = stream or sys.stderr
        self.unit = unit  # what a sample is: img, or seq (a text's window)
        self.enabled = enabled and steps > 0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.label, self.steps, self.batch = f"epoch {epoch}/{epochs}", steps, batch
        self.start = self.last = time.perf_counter()
        self.bar: Any = None
        self.done = 0
        if self.enabled and self.tty:
            from tqdm import tqdm

            # disable=False: tqdm's own TTY check would look at the real stderr, not at `stream`; the width from
            # shutil, which falls back to 80 columns where a terminal reports 0 (tqdm would then draw nothing)
            self.bar = tqdm(
                total=steps * batch,
                desc=self.label,
                unit=unit,
                unit_scale=True,
                file=self.stream,
                mininterval=0.1,
                ncols=shutil.get_terminal_size().columns,
                leave=True,
                disable=False,
            )

    def update(self, step: int, loss: float | None = None) -> None:
        """`step` steps done (1-based); `loss` only when it is already on the host (no device sync here)."""
        if not self.enabled:
            return
        if self.bar is not None:
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            self.bar.update((step - self.done) * self.batch)
            self.done = step
            if step >= self.steps:
                self.bar.close()
            return
        now = time.perf_counter()
        if now - self.last < PLAIN_EVERY and step < self.steps:
            return
        self.last = now
        elapsed = max(now - self.start, 1e-9)
        rate = step * self.batch / elapsed
        left = elapsed * (self.steps - step) / step
        tail = f", loss {loss:.4f}" if loss is not None else ""
        self.stream.write(
            f"{self.label}: step {step}/{self.steps}, {rate:,.0f} {self.unit}/s, "
            f"{int(left) // 60}:{int(left) % 60:02d} left{tail}\n"
        )
        self.stream.flush()


METRICS_CSV = "metrics.csv"
METRICS_COLUMNS = ("epoch", "step", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_s", "seconds")


def _after_earlier_events(folder: Path) -> None:
    """TensorBoard reads a folder's event files in name order, and a name starts with the second it was made
    (events.out.tfevents.<seconds>.<host>.<pid>.<n>): a session resumed within the second of the last one
    (train() called twice in a program) waits for the next second, or its events could be read first."""
    latest = max(
        (int(p.name.split(".")[3]) for p in folder.glob("events.out.tfevents.*") if p.name.split(".")[3].isdigit()),
        default=0,
    )
    now = time.time()
    if int(now) == latest:  # never longer than the rest of this second (a name from the future is left alone)
        time.sleep(math.ceil(now) - now + 0.001)


class RunLog:
    """What a run folder shows besides its checkpoints: metrics.csv (one row per epoch, METRICS_COLUMNS) and,
    where tensorboard is installed, TensorBoard event files (scalars per epoch; nothing and no error where not).

    metrics.csv is rewritten, atomically, from the checkpoint's history after each epoch's checkpoint: a
    resumed run continues it with no duplicate rows, and a run killed at any instant leaves no partial row.
    The event files start again from the resumed epoch (SummaryWriter's purge_step drops later events)."""

    def __init__(self, folder: Path, steps_per_epoch: int, first_epoch: int = 0):
        self.folder, self.steps, self.first = folder, steps_per_epoch, first_epoch
        self.writer: Any = None
        self.tried = False

    def _tensorboard(self) -> Any:
        """The SummaryWriter, made at the first epoch's end (a run that fails before it writes nothing)."""
        if not self.tried:
            self.tried = True
            try:
                with collector.paused():  # tensorboard and protobuf: long-lived objects (archspec.collector)
                    from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package
            except ImportError:
                return None
            _after_earlier_events(self.folder)
            self.writer = SummaryWriter(str(self.folder), purge_step=self.first + 1 if self.first else None)
        return self.writer

    def epoch(self, history: list[EpochMetrics]) -> None:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(METRICS_COLUMNS)
        for m in history:
            writer.writerow(
                [
                    m.epoch,
                    m.epoch * self.steps,
                    f"{m.train_loss:.6g}",
                    f"{m.train_acc:.6g}",
                    f"{m.test_loss:.6g}",
                    f"{m.test_acc:.6g}",
                    f"{m.lr:.6g}",
                    f"{m.images_per_s:.1f}",
                    f"{m.seconds:.3f}",
                ]
            )
        write_bytes_atomically(self.folder / METRICS_CSV, text.getvalue().encode())
        if history and self._tensorboard() is not None:
            m = history[-1]
            for tag, value in (
                ("loss/train", m.train_loss),
                ("loss/val", m.test_loss),
                ("accuracy/train", m.train_acc),
                ("accuracy/val", m.test_acc),
                ("accuracy/val_top5", m.test_top5),
                ("lr", m.lr),
                ("throughput/samples_per_s", m.images_per_s),
            ):
                self.writer.add_scalar(tag, value, m.epoch)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def epoch_line(m: EpochMetrics, epochs: int, unit: str = "img") -> str:
    """One epoch's figures; `unit` is what a sample is (img, or seq: a text's window, whose loss is per token)."""
    return (
        f"epoch {m.epoch}/{epochs}: train loss {m.train_loss:.4f} acc {100 * m.train_acc:.2f}% | "
        f"test loss {m.test_loss:.4f} acc {100 * m.test_acc:.2f}% | {m.images_per_s:,.0f} {unit}/s | "
        f"{m.seconds:.1f} s | lr {m.lr:.3g}"
    )


def run_line(result: RunResult) -> str:
    """What `archspec train` prints when the run ends: the final test accuracy, or a text's test loss."""
    last = result.history[-1]
    epochs = f"{last.epoch} epoch{'s' if last.epoch != 1 else ''}, {result.seconds:.1f} s of training"
    if result.task == "next_token":
        return (
            f"wrote {result.folder / 'model.safetensors'}: test loss {last.test_loss:.4f} nats per token "
            f"(next-token accuracy {100 * last.test_acc:.2f}%) after {epochs}"
        )
    return f"wrote {result.folder / 'model.safetensors'}: test accuracy {100 * last.test_acc:.2f}% after {epochs}"


def eval_text(result: EvalResult) -> str:
    if result.task == "next_token":
        return (
            f"loss {result.loss:.4f} nats per token ({result.loss / math.log(2):.3f} bits)  next-token top-1 "
            f"{100 * result.top1:.2f}%  top-5 {100 * result.top5:.2f}%  ({result.images:,} tokens)"
        )
    lines = [
        f"loss {result.loss:.4f}  top-1 {100 * result.top1:.2f}%  top-5 {100 * result.top5:.2f}%  "
        f"({result.images:,} images)"
    ]
    if len(result.classes) <= 20:
        names = [printable(c)[:8] for c in result.classes]
        width = max(6, *(len(n) for n in names), *(len(str(v)) for row in result.confusion for v in row))
        lines.append("confusion (rows: true class, columns: predicted):")
        lines.append(" " * (width + 1) + " ".join(n.rjust(width) for n in names))
        for name, row in zip(names, result.confusion):
            lines.append(name.rjust(width) + " " + " ".join(str(v).rjust(width) for v in row))
    else:
        lines.append(f"confusion matrix: {len(result.classes)} classes; --json prints it")
    return "\n".join(lines)


# --- compare ----------------------------------------------------------------------------------------

COLUMNS = (
    "model",
    "dataset",
    "augment",
    "training time (s)",
    "params",
    "train loss",
    "train acc",
    "test loss",
    "test acc",
)


def rows(results: list[tuple[str, RunResult]]) -> list[list[str]]:
    table = []
    for label, r in results:
        last = r.history[-1]
        table.append(
            [
                label,
                r.dataset,
                r.augment or "-",
                f"{r.seconds:.1f}",
                str(r.params),
                f"{last.train_loss:.4f}",
                f"{last.train_acc:.4f}",
                f"{last.test_loss:.4f}",
                f"{last.test_acc:.4f}",
            ]
        )
    return table


def markdown(results: list[tuple[str, RunResult]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "| " + " | ".join("---" for _ in COLUMNS) + " |"]
    for row in rows(results):
        shown = [
            *row[:4],
            f"{int(row[4]):,}",
            row[5],
            f"{100 * float(row[6]):.2f}%",
            row[7],
            f"{100 * float(row[8]):.2f}%",
        ]
        lines.append("| " + " | ".join(s.replace("|", "\\|") for s in shown) + " |")
    note = (
        "\nTraining time is the sum of the epochs' wall time (evaluation included). Train loss and accuracy "
        "are the last epoch's averages over its steps, in train mode (augmented, with dropout); test figures "
        "come from evaluating after that epoch.\n"
    )
    return "\n".join(lines) + "\n" + note


def write_csv(path: Path, results: list[tuple[str, RunResult]]) -> None:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(COLUMNS)
    writer.writerows(rows(results))
    write_bytes_atomically(path, text.getvalue().encode())


def write_curves(folder: Path, results: list[tuple[str, RunResult]]) -> list[Path]:
    """loss.png and accuracy.png: train (dashed) and test (solid) per entry, over epochs."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed, and never a GUI window from a command-line tool
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    written = []
    for name, train_key, test_key, ylabel in (
        ("loss.png", "train_loss", "test_loss", "loss"),
        ("accuracy.png", "train_acc", "test_acc", "accuracy"),
    ):
        figure, axes = plt.subplots(figsize=(7, 4.5), dpi=100)
        for index, (label, r) in enumerate(results):
            epochs = [m.epoch for m in r.history]
            color = f"C{index % 10}"
            axes.plot(epochs, [getattr(m, train_key) for m in r.history], "--", color=color, label=f"{label} (train)")
            axes.plot(epochs, [getattr(m, test_key) for m in r.history], "-", color=color, label=f"{label} (test)")
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are counted, never 2.5
        axes.set_ylabel(ylabel)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        plt.close(figure)
        write_bytes_atomically(folder / name, buffer.getvalue())
        written.append(folder / name)
    return written
