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

An ArchspecError in a worker comes back to the launching process as data and is raised there, so the
command line reports it like any other error rather than as a launcher traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
import multiprocessing
import os
import uuid

from archspec.errors import ArchspecError, SpecErrors
from archspec.train import TrainOptions

LAUNCH_FAILED = "AS916"


@dataclass(frozen=True)
class Failure:
    code: str
    message: str


def launch(options: TrainOptions) -> object:
    import torch
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from archspec import pipeline
    from archspec.train import loop

    loop.check(options)  # fail here, once, rather than in every worker
    loop.device_of(options.device)
    pipeline.compile_spec(options.spec, options.overrides, variant=options.variant)  # spec errors, located
    if options.device.startswith("cuda") and options.nproc > torch.cuda.device_count():
        raise ArchspecError(LAUNCH_FAILED, f"--nproc {options.nproc} needs as many GPUs; {torch.cuda.device_count()} visible")
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=options.nproc, run_id=f"archspec-{uuid.uuid4().hex[:12]}",
                          rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0, monitor_interval=0.1,
                          start_method="spawn" if options.device.startswith("cuda") else "forkserver")
    if config.start_method == "forkserver":
        # the fork server imports torch and this module once; workers fork from it, fresh
        multiprocessing.set_forkserver_preload([__name__])
    try:
        results = elastic_launch(config, _worker)(options)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        raise ArchspecError(LAUNCH_FAILED, f"training process {rank} of {options.nproc} failed (exit code {failure.exitcode}); "
                            "its messages are above") from None
    failures = [r for r in results.values() if isinstance(r, Failure)]
    if failures:
        raise ArchspecError(failures[0].code, failures[0].message)
    return results[0]


def _worker(options: TrainOptions) -> object:
    """One process of the run (spawned by the launcher, which sets RANK, WORLD_SIZE, LOCAL_RANK)."""
    import torch
    import torch.distributed as dist

    from archspec.train import loop

    rank = loop.Rank(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
    cuda = options.device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(rank.local)
    if options.threads is None:  # share the cores instead of every process taking all of them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // rank.world))
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        return loop.run(options, rank)
    except ArchspecError as exc:
        return Failure(exc.code, exc.message)
    except SpecErrors as exc:
        return Failure("AS916", f"the spec does not compile: {exc}")
    finally:
        dist.destroy_process_group()
