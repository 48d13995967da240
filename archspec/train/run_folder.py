"""What a run folder may hold, checked before any of it is used.

A run folder (archspec.train.checkpoint) is input like a spec: it may come from someone else, or have been
edited. Every field of state.json is read through one typed model (`RunState`), and the tensors of the
state file through `check_tensors`, so a damaged or forged folder is an AS915 that names the field, never a
traceback deep in torch or `random`, and never silently wrong (`"epoch": -3` training six more epochs,
`"epoch": 1e30` reporting a finished run). A run folder that is a symbolic link, or sits below one named
by the path (a planted `./runs`), is refused as `build -o` refuses a linked output
(archspec.backends.artifacts): the run would write wherever the link points.
"""

from __future__ import annotations

from collections.abc import Mapping
import math
import os
from pathlib import Path
import stat
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
import torch

from archspec.errors import ArchspecError

BAD_CHECKPOINT = "AS915"
_STATE_SIZE = 625  # Python's Mersenne Twister: 624 words and the position
Finite = Annotated[float, Field(allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0)]


class _Strict(BaseModel):
    # Keys this archspec does not know are left alone (a newer writer may add some); the ones it reads must
    # have their type exactly: 3.0 is not an epoch, "1" not a step.
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class Metrics(_Strict):
    """One epoch of the history (archspec.train.metrics.EpochMetrics)."""

    epoch: Annotated[int, Field(ge=1)]
    train_loss: Finite
    train_acc: Finite
    test_loss: Finite
    test_acc: Finite
    test_top5: Finite
    images_per_s: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    lr: Finite


class Options(_Strict):
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)
    overrides: dict[str, Any] = Field(default_factory=dict)
    variant: str | None = None


class OptimizerScalars(_Strict):
    """The optimizer state dict less its tensors; empty in an FSDP run (its optimizer state is sharded)."""

    param_groups: list[dict[str, Any]] = Field(default_factory=list)
    state: dict[Annotated[str, Field(pattern=r"^(0|[1-9][0-9]{0,8})$")], dict[str, Any]] = Field(default_factory=dict)


class RunState(_Strict):
    """state.json. `history` has one entry per completed epoch, so `epoch` is bounded by what was recorded."""

    format: Literal[1]
    epoch: Count
    step: Count
    seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    options: Options = Field(default_factory=Options)
    # plain names inside the folder, as archspec writes them: never a path that leads out of it
    weights: Annotated[str, Field(pattern=r"^checkpoint-[0-9]{4,9}\.(safetensors|dcp)$")]
    state: Annotated[str, Field(pattern=r"^checkpoint-[0-9]{4,9}\.state\.safetensors$")]
    optimizer: OptimizerScalars = Field(default_factory=OptimizerScalars)
    python_random: list[Any]  # [3, [625 words], gauss or null]: random.getstate(), checked below
    history: list[Metrics]

    @model_validator(mode="after")
    def _consistent(self) -> RunState:
        if not _random_state(self.python_random):
            raise ValueError(
                f"python_random: not a state of Python's random ([3, {_STATE_SIZE} words the last of which "
                "is a position, a float or null])"
            )
        if len(self.history) != self.epoch:
            raise ValueError(f"epoch is {self.epoch} but the history records {len(self.history)} epochs")
        if [m.epoch for m in self.history] != list(range(1, self.epoch + 1)):
            raise ValueError("history: the epochs are not 1, 2, ... in order")
        return self


def _random_state(value: list[Any]) -> bool:
    if len(value) != 3 or type(value[0]) is not int or value[0] != 3:
        return False
    words, gauss = value[1], value[2]
    if not isinstance(words, list) or len(words) != _STATE_SIZE:
        return False
    if not all(type(w) is int and 0 <= w < 2**32 for w in words) or words[-1] > _STATE_SIZE - 1:
        return False
    return gauss is None or (type(gauss) is float and math.isfinite(gauss))


def read_state(data: object, path: Path) -> dict[str, Any]:
    """state.json's parsed JSON, checked; the same data as plain values (what checkpoint.py reads)."""
    try:
        return RunState.model_validate(data).model_dump(mode="python")
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ArchspecError(
            BAD_CHECKPOINT,
            f"{path} is damaged: {where + ': ' if where else ''}"
            f"{err['msg'].removeprefix('Value error, ')}; start a new run with another --out",
        ) from None


def check_tensors(
    extra: Mapping[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scalars: Mapping[str, Any],
    sharded: bool,
    path: Path,
) -> None:
    """The state file's tensors are exactly those this run's optimizer and RNGs take, each of the shape and
    type it must have (torch's load_state_dict checks neither: a wrong momentum failed at the first step)."""

    def bad(what: str) -> ArchspecError:
        return ArchspecError(BAD_CHECKPOINT, f"{path} is damaged: {what}; start a new run with another --out")

    names = set(extra)
    cuda = sorted(k for k in names if k.startswith("rng/cuda/"))
    wanted_rng = {"rng/torch", *(f"rng/cuda/{i}" for i in range(len(cuda)))}
    rng = {k for k in names if k.startswith("rng/")}
    if rng != wanted_rng:
        missing, unknown = sorted(wanted_rng - rng), sorted(rng - wanted_rng)
        raise bad(
            "the random-number states are "
            + "; ".join(
                ([f"missing {', '.join(missing)}"] if missing else [])
                + ([f"not expected: {', '.join(unknown)}"] if unknown else [])
            )
        )
    reference = torch.get_rng_state()
    for key in sorted(rng):
        tensor = extra[key]
        size_ok = tensor.shape == reference.shape if key == "rng/torch" else tensor.dim() == 1 and tensor.numel() > 0
        if tensor.dtype != torch.uint8 or not size_ok:
            raise bad(f"{key} is a {tensor.dtype} tensor of shape {list(tensor.shape)}, not a random-number state")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for key in sorted(names - rng):
        parts = key.split("/")
        if (
            sharded
            or len(parts) != 3
            or parts[0] != "optimizer"
            or not parts[1].isdigit()
            or int(parts[1]) >= len(params)
        ):
            raise bad(f"it holds a tensor {key!r} that this run's optimizer has no place for")
        tensor, param = extra[key], params[int(parts[1])]
        if parts[2] == "step":
            fits = tensor.numel() == 1
        else:
            fits = tensor.shape == param.shape and tensor.dtype.is_floating_point
        if not fits:
            raise bad(
                f"{key} has shape {list(tensor.shape)} ({tensor.dtype}); the parameter it belongs to has "
                f"{list(param.shape)}"
            )
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise bad(f"{key} holds NaN or infinity")
    if not sharded:
        _check_groups(scalars, optimizer, bad)


def _check_groups(scalars: Mapping[str, Any], optimizer: torch.optim.Optimizer, bad: Any) -> None:
    live = optimizer.state_dict()["param_groups"]
    stored = scalars.get("param_groups", [])
    if len(stored) != len(live):
        raise bad(f"optimizer.param_groups has {len(stored)} groups; this run's optimizer has {len(live)}")
    for k, (mine, theirs) in enumerate(zip(live, stored)):
        for key, value in mine.items():
            if key not in theirs:  # torch fills the options a newer version added (its __setstate__); not these
                if key in ("params", "lr"):
                    raise bad(f"optimizer.param_groups.{k} has no {key!r}")
                continue
            if not (theirs[key] == value if key == "params" else _same_kind(value, theirs[key])):
                raise bad(f"optimizer.param_groups.{k}.{key} is {theirs[key]!r}; this run's optimizer has {value!r}")
    count = sum(len(group["params"]) for group in live)
    for index, values in scalars.get("state", {}).items():
        if int(index) >= count:
            raise bad(f"optimizer.state.{index}: the optimizer has {count} parameters")
        for key, value in values.items():
            if not (
                value is None
                or isinstance(value, (bool, str))
                or (isinstance(value, (int, float)) and math.isfinite(value))
            ):
                raise bad(f"optimizer.state.{index}.{key} is {value!r}, not a finite number")


def _same_kind(ours: object, theirs: object) -> bool:
    """`theirs` (from JSON) can stand where the live optimizer has `ours`: the same kind, finite numbers."""
    if isinstance(ours, bool) or ours is None or isinstance(ours, str):
        return type(theirs) is type(ours)
    if isinstance(ours, (int, float)):
        return isinstance(theirs, (int, float)) and not isinstance(theirs, bool) and math.isfinite(theirs)
    if isinstance(ours, (list, tuple)):
        return (
            isinstance(theirs, (list, tuple))
            and len(theirs) == len(ours)
            and all(_same_kind(a, b) for a, b in zip(ours, theirs))
        )
    return True  # a kind JSON cannot hold (a tensor lr): torch's own load checks it


def check_folder(folder: Path) -> None:
    """Refuse a run folder that is a symbolic link, or lies below one, from the current folder down (the part
    of the path a command line names: `runs/<name>`, `--out sub/run`), or is not a folder."""
    folder = Path(os.path.abspath(folder))
    try:
        relative = folder.relative_to(Path.cwd())
        chain = [Path.cwd().joinpath(*relative.parts[: k + 1]) for k in range(len(relative.parts))]
    except ValueError:  # elsewhere: the folder itself (its parents are the user's to choose)
        chain = [folder]
    for part in chain:
        try:
            mode = os.lstat(part).st_mode
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ArchspecError(BAD_CHECKPOINT, f"cannot use the run folder {folder}: {exc.strerror or exc}") from None
        if stat.S_ISLNK(mode):
            raise ArchspecError(
                BAD_CHECKPOINT,
                f"{part} is a symbolic link; a run folder must be a real folder (the run "
                "would write wherever the link points): remove the link, or give another --out",
            )
