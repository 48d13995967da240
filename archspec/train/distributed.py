"""`--nproc N`: the training loop in N processes under DistributedDataParallel, launched by
torch.distributed's elastic launcher (what `torchrun --standalone --nproc-per-node N` runs), with a
c10d rendezvous on a free loopback port. CUDA runs one GPU per process over NCCL; CPU runs use gloo.
CPU workers fork from a fork server that imported torch and this module once and has computed nothing:
forking the launching process itself would break autograd when it already ran there (a notebook, the test
suite), and spawning imports torch again in every worker. CUDA workers are spawned, as CUDA requires.

Each process takes its contiguous share of every global batch (archspec.train.loop), so with the same
global batch the run matches one process up to the order of floating-point sums. Batch norm keeps
per-process statistics on CPU; on CUDA it is converted to SyncBatchNorm, so it too sees the global batch.
Rank 0 evaluates and writes the checkpoints; the others wait at a barrier.

An ArchspecError in a worker comes back to the launching process as data (a small JSON file) and is
raised there, so the command line reports it like any other error rather than as a launcher traceback;
the worker then exits 1 at once, so that the launcher stops the others, which may be waiting for it in a
collective (they would otherwise block until the process group's timeout: 30 minutes for gloo). Ctrl-C or SIGTERM to the
launching process reaches it as the launcher's SignalException; the launcher stops the workers, and the
command line exits 130 ("interrupted"), as for a one-process run. `--nproc` is at most the CPUs this
process may run on (CUDA: the visible GPUs) and MAX_NPROC.

`archspec train` started by torchrun (`join`: RANK, WORLD_SIZE and LOCAL_RANK in the environment, which is
torchrun's contract with its workers) joins torchrun's process group instead of launching its own: the
same loop, on one machine or several (docs/training.md).
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import logging
import multiprocessing
import os
from pathlib import Path
import shutil
import sys
import tempfile
from typing import TYPE_CHECKING
import uuid

from archspec.errors import ArchspecError, SpecErrors
from archspec.train import MAX_NPROC, TrainOptions

if TYPE_CHECKING:
    from archspec.train.loop import Rank
    from archspec.train.result import RunResult

LAUNCH_FAILED = "AS916"


@dataclass(frozen=True)
class Failure:
    code: str
    message: str


def launch(options: TrainOptions) -> object:
    import torch
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from archspec import pipeline
    from archspec.train import loop

    loop.check(options)  # fail here, once, rather than in every worker
    loop.device_of(options.device)
    pipeline.compile_spec(options.spec, options.overrides, variant=options.variant)  # spec errors, located
    if options.device.startswith("cuda") and options.nproc > torch.cuda.device_count():
        raise ArchspecError(
            LAUNCH_FAILED, f"--nproc {options.nproc} needs as many GPUs; {torch.cuda.device_count()} visible"
        )
    if options.nproc > MAX_NPROC:
        raise ArchspecError(
            loop.BAD_OPTION,
            f"--nproc {options.nproc}: at most {MAX_NPROC} processes on one machine; "
            "for more, start archspec train on each machine with torchrun (docs/training.md)",
        )
    if not options.device.startswith("cuda") and options.nproc > cpus():
        raise ArchspecError(
            loop.BAD_OPTION,
            f"--nproc {options.nproc}: this machine lets archspec use {cpus()} CPUs; "
            f"give at most --nproc {min(cpus(), MAX_NPROC)} (each process needs a core of its own)",
        )
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=options.nproc,
        run_id=f"archspec-{uuid.uuid4().hex[:12]}",
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        max_restarts=0,
        monitor_interval=0.1,
        start_method="spawn" if options.device.startswith("cuda") else "forkserver",
    )
    if config.start_method == "forkserver":
        # the fork server imports torch and the loop once (computing nothing); workers fork from it, fresh
        multiprocessing.set_forkserver_preload([__name__, "archspec.train.loop", "archspec.train.sharded"])
        # A fork server lives as long as this process and its children write to the stderr it was started
        # with: a second launch from one process (a notebook, a test session) would print into the first
        # launch's stream. A server started now has today's; the private _stop is CPython's own (3.8+).
        from multiprocessing import forkserver

        stop = getattr(forkserver._forkserver, "_stop", None)
        if stop is not None:
            stop()
    reports = tempfile.mkdtemp(prefix="archspec-train-")
    # the launcher logs a worker's non-zero exit with its own traceback; the error raised below says it all
    quiet = logging.getLogger("torch.distributed.elastic.multiprocessing.api")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        results = elastic_launch(config, _worker)(options, reports)
    except SignalException:  # the launcher has stopped the workers; the command line says "interrupted"
        raise KeyboardInterrupt from None
    except ChildFailedError as exc:
        for name in sorted(os.listdir(reports), key=lambda n: int(n.split(".")[0])):  # the lowest rank's
            reported = json.loads(Path(reports, name).read_text())
            raise ArchspecError(reported["code"], reported["message"]) from None
        rank, failure = exc.get_first_failure()
        raise ArchspecError(
            LAUNCH_FAILED,
            f"training process {rank} of {options.nproc} failed (exit code {failure.exitcode}); its messages are above",
        ) from None
    finally:
        quiet.setLevel(level)
        shutil.rmtree(reports, ignore_errors=True)
    return results[0]


def cpus() -> int:
    """The CPUs this process may run on (its affinity mask, e.g. a container's or taskset's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"))


def join(options: TrainOptions) -> RunResult | None:
    """This process is one of torchrun's workers: run the loop in torchrun's process group. Returns the
    run's result on rank 0 and None on the others (which print nothing of their own)."""
    from archspec.train import loop

    if options.nproc != 1:
        raise ArchspecError(
            loop.BAD_OPTION,
            f"--nproc {options.nproc} under torchrun: the processes are torchrun's "
            "(--nproc-per-node, --nnodes); leave --nproc out",
        )
    rank = _rank()
    result = _in_group(options.with_(nproc=rank.world), rank)
    return result if rank.main else None


def _rank() -> Rank:
    from archspec.train import loop

    return loop.Rank(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))


def _in_group(options: TrainOptions, rank: Rank) -> RunResult:
    """The loop in the process group that RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT describe."""
    import torch
    import torch.distributed as dist

    from archspec.train import loop

    cuda = options.device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(rank.local)
    if options.threads is None:  # share this machine's cores instead of every process taking all of them
        torch.set_num_threads(max(1, cpus() // int(os.environ.get("LOCAL_WORLD_SIZE", rank.world))))
    dist.init_process_group("nccl" if cuda else "gloo")
    result = loop.run(options, rank)
    # only after a run that ended on every process: destroying the group while the others wait in a
    # collective can block; on an error the process exits (torchrun or _worker) and the launcher stops the rest
    dist.destroy_process_group()
    return result


def _worker(options: TrainOptions, reports: str) -> object:
    """One process of the run (spawned by the launcher, which sets RANK, WORLD_SIZE, LOCAL_RANK)."""
    rank = _rank()
    try:
        return _in_group(options, rank)
    except ArchspecError as exc:
        failure = Failure(exc.code, exc.message)
    except SpecErrors as exc:
        failure = Failure("AS916", f"the spec does not compile: {exc}")
    Path(reports, f"{rank.rank}.json").write_text(json.dumps({"code": failure.code, "message": failure.message}))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)  # no teardown of the process group: the others may be inside a collective with this one
