"""What one training run returns (`loop.run`, `archspec.train.train`), on its own so that the loop,
which produces it, and the report, which prints it, both import it and not each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from archspec.train.data import CLASSIFY
from archspec.train.metrics import EpochMetrics


@dataclass
class RunResult:
    name: str  # the spec's name
    folder: Path
    dataset: str
    augment: str
    params: int
    seconds: float
    history: list[EpochMetrics] = field(default_factory=list)
    task: str = CLASSIFY  # the dataset's (data.TASKS)
