"""--strategy fsdp: the module's parameters, gradients and optimizer state sharded over the processes
with PyTorch's FSDP2 (`torch.distributed.fsdp.fully_shard`), and checkpoints written sharded with
torch.distributed.checkpoint (DCP), every process writing its own shards.

Which modules become FSDP units: the module `archspec.build` returns is a torch.fx GraphModule whose
forward calls the leaf modules (`self.features[0].conv(x)`) and never their containers, and FSDP2
gathers a unit's parameters in a forward pre-hook of the unit's modules. So a unit is a group of called
modules, those under one parent (a block's convolution and norm, an attention's projections), with at
least SHARD_MIN_PARAMS parameters; smaller groups, parameters read directly by the graph (a position
embedding) and parameters shared between modules (tied embeddings) stay in the root's unit, gathered
for the whole forward. Batch-norm statistics are buffers, not sharded: each process keeps its own on
CPU, as under DDP (on CUDA the loop converts to SyncBatchNorm before sharding).

The final model.safetensors is the full state dict, gathered onto rank 0's CPU, so `archspec eval` and
`archspec.build(weights=...)` read an FSDP run's weights like any other.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import suppress
from pathlib import Path
from typing import Any

import torch

SHARD_MIN_PARAMS = 4096


def units(module: torch.nn.Module, min_params: int = SHARD_MIN_PARAMS) -> list[list[str]]:
    """The names of the modules that form each FSDP unit (besides the root's), in forward order."""
    graph = getattr(module, "graph", None)
    if graph is not None:  # a GraphModule: the modules its forward calls
        called = list(dict.fromkeys(str(n.target) for n in graph.nodes if n.op == "call_module"))
    else:  # any other module: its leaves
        called = [name for name, m in module.named_modules() if name and not any(True for _ in m.children())]
    owners: dict[int, set[str]] = defaultdict(set)
    for name in called:
        for p in module.get_submodule(name).parameters():
            owners[id(p)].add(name)
    for node in graph.nodes if graph is not None else ():
        if node.op == "get_attr":  # read by the graph itself (a tied head reads the embedding's weight)
            with suppress(AttributeError):  # a buffer or a constant, not a parameter
                owners[id(module.get_parameter(str(node.target)))].add("")
    groups: dict[str, list[str]] = {}
    for name in called:
        params = list(module.get_submodule(name).parameters())
        if params and all(len(owners[id(p)]) == 1 for p in params):  # a shared parameter stays with the root
            groups.setdefault(name.rpartition(".")[0], []).append(name)
    return [
        names
        for names in groups.values()
        if sum(p.numel() for n in names for p in module.get_submodule(n).parameters()) >= min_params
    ]


def shard(module: torch.nn.Module) -> None:
    """Shard `module` in place over the default process group (call before making the optimizer:
    the parameters become DTensors)."""
    from torch.distributed.fsdp import fully_shard

    for names in units(module):
        fully_shard([module.get_submodule(n) for n in names])
    fully_shard(module)


def save(path: Path, module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Every process writes its shards of the weights and the optimizer state into the folder `path`;
    rank 0 writes DCP's .metadata last, after all the shards are written."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    weights, state = get_state_dict(module, optimizer)
    dcp.save({"model": weights, "optimizer": state}, checkpoint_id=str(path))


def load(path: Path, module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Read a folder that `save` wrote into this process's shards (DCP reshards: the number of processes
    may differ from the run that wrote it)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    weights, state = get_state_dict(module, optimizer)  # also creates the optimizer's state to load into
    both: dict[str, Any] = {"model": weights, "optimizer": state}
    try:
        dcp.load(both, checkpoint_id=str(path))
    except CheckpointException as exc:  # a BaseException: would pass every `except Exception`
        raise RuntimeError(f"cannot read the sharded checkpoint: {_reason(exc)}") from None
    set_state_dict(module, optimizer, model_state_dict=both["model"], optim_state_dict=both["optimizer"])


def full_weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole state dict on rank 0's CPU (empty on the other ranks); every process must call this."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    weights = get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {name: value for name, value in weights.items() if isinstance(value, torch.Tensor)}


def read_full(path: Path) -> dict[str, torch.Tensor]:
    """The whole weights of a folder that `save` wrote, in this one process (no process group): for
    `archspec eval` of an FSDP run that has not finished. Goes through a temporary torch.save file
    (torch.distributed.checkpoint's own converter), read back with weights_only."""
    import tempfile

    from torch.distributed.checkpoint.api import CheckpointException
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    with tempfile.TemporaryDirectory(prefix="archspec-dcp-") as scratch:
        try:
            dcp_to_torch_save(str(path), str(Path(scratch, "full.pt")))
            saved = torch.load(Path(scratch, "full.pt"), map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, ValueError, CheckpointException) as exc:  # the last: a BaseException
            raise RuntimeError(f"cannot read the sharded checkpoint {path}: {_reason(exc)}") from None
    weights = saved.get("model") if isinstance(saved, dict) else None
    if not isinstance(weights, dict):
        raise RuntimeError(f"{path} holds no model weights")
    return {name: value for name, value in weights.items() if isinstance(value, torch.Tensor)}


def _reason(exc: BaseException) -> str:
    """The first line of what went wrong; a CheckpointException's own text only lists the failing ranks."""
    failures = getattr(exc, "failures", None) or {}
    first = next(iter(failures.values()), exc)
    if isinstance(first, tuple):  # (exception, traceback) in some torch versions
        first = first[0]
    text = (str(first).strip().splitlines() or [""])[0]
    return f"{type(first).__name__}: {text}" if text else type(first).__name__
