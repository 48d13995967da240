"""Loss, top-k accuracy and the confusion matrix, accumulated on the device (no sync per step)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from archspec.limits import DATA


class Tally:
    """Sums over batches: loss (summed over samples: images, or a text's tokens), top-1 and top-5 hits,
    samples; optionally the confusion matrix (rows: true class, columns: predicted)."""

    def __init__(self, classes: int, device: torch.device, confusion: bool = False):
        self.sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top1, top5, n
        self.classes = classes
        # Bounded before it is allocated: classes**2 counts, twice over (the tensor, its bincount), then a list.
        # A folder of 20,000 empty class folders would ask for 6.8 GB; past the bound there is no matrix.
        self.confusion = (
            torch.zeros(classes, classes, dtype=torch.long, device=device)
            if confusion and classes <= DATA.confusion_classes
            else None
        )

    @torch.no_grad()
    def add(self, logits: torch.Tensor, labels: torch.Tensor, loss_sum: torch.Tensor) -> None:
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        hits = top == labels[:, None]
        self.sums += torch.stack(
            [
                loss_sum.double(),
                hits[:, 0].sum().double(),
                hits.any(1).sum().double(),
                torch.tensor(float(labels.shape[0]), dtype=torch.float64, device=labels.device),
            ]
        )
        if self.confusion is not None:
            index = labels * self.classes + top[:, 0]
            self.confusion += torch.bincount(index, minlength=self.classes**2).view(self.classes, self.classes)

    def merged(self, sums: torch.Tensor) -> Tally:
        """This tally with `sums` in place of its own (the all-reduced sums of every process)."""
        self.sums = sums
        return self

    @property
    def n(self) -> int:
        return int(self.sums[3].item())

    def result(self) -> tuple[float, float, float]:
        """(mean loss, top-1, top-5) as fractions; zeros for no images."""
        loss, top1, top5, n = self.sums.tolist()
        return (loss / n, top1 / n, top5 / n) if n else (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class EpochMetrics:
    """One epoch: training figures are averages over the epoch's steps (in train mode, augmented);
    test figures come from an evaluation after the epoch."""

    epoch: int
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    test_top5: float
    images_per_s: float  # training images per second of the epoch's steps (evaluation not counted)
    seconds: float  # the epoch's wall time, evaluation included
    lr: float  # at the epoch's last step

    def to_json(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, float]) -> EpochMetrics:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})  # type: ignore[arg-type]


@dataclass(frozen=True)
class EvalResult:
    loss: float  # mean cross-entropy in nats: per image, or per token of a text
    top1: float
    top5: float
    images: int  # samples counted: images, or a text's tokens
    confusion: list[list[int]]
    classes: tuple[str, ...]
    task: str = "classify"  # archspec.train.data.TASKS

    def to_json(self) -> dict[str, object]:
        if self.task == "next_token":
            return {
                "loss": self.loss,
                "top1": self.top1,
                "top5": self.top5,
                "tokens": self.images,
                "vocabulary": len(self.classes),
            }
        return {
            "loss": self.loss,
            "top1": self.top1,
            "top5": self.top5,
            "images": self.images,
            "classes": list(self.classes),
            "confusion": self.confusion,
        }
