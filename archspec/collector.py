"""Python's garbage collector around torch: kept out of the way where it can only cost time.

Importing torch and torch._dynamo (which every torch.optim optimizer imports when it is made) creates about
350,000 long-lived objects and almost no garbage, yet the collector runs six full passes over the growing
heap meanwhile (0.8 s on a 2-core machine), and the interpreter's exit walks the heap again (1.05 s in all).
`paused` holds collection off during such imports (the training modules, the optimizer's first
construction, a backend's import); `freeze_for_exit` collects once and moves every object out of the
collector's reach just before a process ends. benchmarks/train_pipeline.py measures what it saves.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import gc


@contextmanager
def paused() -> Iterator[None]:
    """No automatic collection inside the block (imports: objects that live as long as the process); the
    collector's previous setting afterwards. Cycles made inside are collected by the next pass after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def freeze_for_exit() -> None:
    """For a process about to exit (the `archspec` command, never a library call): one collection, then every
    object left is frozen out of the collector's reach, so the interpreter's exit does not walk them again
    (1.05 s -> 0.39 s after importing torch and torch._dynamo). The collection comes first because garbage
    can hold more than memory: an FSDP module's process group keeps gloo threads, and with the freeze alone a
    torchrun worker once aborted at exit ("terminate called without an active exception"; once in over 20
    runs, not reproduced since, so the cause is likely but unproven). Only cycles made after this point are
    no longer collected, which is why nothing that goes on running may call it."""
    gc.collect()
    gc.freeze()
