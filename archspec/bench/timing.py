"""Timing on a device: warm-up, then each step timed alone, steps interleaved round by round.

On CUDA each step is bracketed by CUDA events (GPU time, no host synchronisation between steps; one
synchronize before reading them); on CPU by perf_counter. Interleaving, with the order alternating
every round, spreads machine noise and order effects evenly over the compared steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import statistics
import time

import torch

from archspec.bench import Stats

Step = Callable[[], object]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(steps: Sequence[Step], device: torch.device, warmup: int, iters: int) -> list[list[float]]:
    """Milliseconds of each step, `iters` samples per step, after `warmup` untimed calls of each."""
    for step in steps:
        for _ in range(warmup):
            step()
    synchronize(device)
    if device.type == "cuda":
        events: list[list[tuple[torch.cuda.Event, torch.cuda.Event]]] = [[] for _ in steps]
        for i in range(iters):
            for k in _order(len(steps), i):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                steps[k]()
                end.record()
                events[k].append((start, end))
        synchronize(device)
        return [[start.elapsed_time(end) for start, end in pairs] for pairs in events]
    samples: list[list[float]] = [[] for _ in steps]
    for i in range(iters):
        for k in _order(len(steps), i):
            begin = time.perf_counter()
            steps[k]()
            samples[k].append((time.perf_counter() - begin) * 1e3)
    return samples


def _order(n: int, round_: int) -> list[int]:
    return list(range(n)) if round_ % 2 == 0 else list(reversed(range(n)))


def summarize(label: str, samples_ms: Sequence[float], batch: int) -> Stats:
    """Median, quartiles (equal to the median for a single sample), extremes and images per second."""
    ordered = sorted(samples_ms)
    median = statistics.median(ordered)
    q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 else (median, median, median)
    return Stats(label, tuple(samples_ms), median, q1, q3, ordered[0], ordered[-1], batch / (median / 1e3))
