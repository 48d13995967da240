"""The typed spec (format version 1), as pydantic models.

A spec file is one of two things:

* a full spec (`Spec`): parameters, derived variables, a table of variants, reusable blocks and the
  layer list;
* a block library (`Library`): blocks only, for other files' `imports:`;
* a thin spec (`SpecRef`): `use:` names a full spec file, `variant:` picks a row of its table, `set:`
  overrides parameter values, and `expect:` states the figures the result must have.

Values anywhere in `vars`, `input`, `layers` and `blocks` may be expressions (see archspec.expr).
These models check structure only; names, expressions and shapes are checked by lowering.
Each model remembers the path of keys that led to it (`where`), so later stages can locate errors.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictBool, StrictInt, field_validator, model_validator

from archspec.errors import Path

ParamType = Literal["int", "float", "bool", "str", "list", "any"]
LAYER_KEYS = ("op", "name", "from", "repeat", "if", "else", "trainable", "init")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    _where: Path = PrivateAttr(default=())

    @property
    def where(self) -> Path:
        # Read the private slot directly: pydantic's __getattr__ for private attributes costs a
        # microsecond per call, and lowering asks for locations of every layer it expands.
        return self.__pydantic_private__["_where"]  # type: ignore[index]


def infer_type(value: Any) -> ParamType:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    return "any"


class ParamDecl(Model):
    """A typed parameter. In YAML either `name: default` (type from the default) or a mapping."""

    type: ParamType
    default: Any = None
    required: bool = False
    doc: str = ""
    choices: list[Any] | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return {"type": infer_type(data), "default": data}
        if "default" not in data and "type" in data:
            return {**data, "required": True}
        if "type" not in data and "default" in data:
            return {**data, "type": infer_type(data["default"])}
        return data


class Repeat(Model):
    times: StrictInt | str
    index: str = Field("i", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class Layer(Model):
    """One layer: an op or a block, its inputs, optional repetition and condition; every other key is
    an argument of the op or block."""

    op: str
    name: str | None = None
    from_: str | Annotated[list[str], Field(min_length=1)] | None = Field(None, alias="from")
    repeat: StrictInt | str | Repeat | None = None
    if_: StrictBool | str | None = Field(None, alias="if")
    else_: str | None = Field(None, alias="else")  # with if: false and several inputs: the one that passes on
    trainable: StrictBool | str | None = Field(
        None,
        description="false: the layer's tensors (every layer's inside a block) keep their names but take no gradient",
    )
    # For an op or block that declares an argument `init` of its own (parameter, layer_scale), that argument, as in
    # format 1 before this key; for any other, {tensor: rule} where a rule is an init: distribution or {values: [...]}
    # and, on a block, a tensor is a path inside it (conv.weight). Lowering tells the two apart by the op.
    init: Any = Field(
        None,
        description="how this layer's tensors start: {weight: {values: ...}, bias: zeros}, "
        "or the op's own init argument (parameter, layer_scale)",
    )
    args: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name", mode="before")
    @classmethod
    def _index_name(cls, v: Any) -> Any:
        # `name: 0` (YAML reads an int) names a layer like the reference's numbered children.
        return str(v) if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else v

    @model_validator(mode="before")
    @classmethod
    def _collect_args(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fixed = {k: v for k, v in data.items() if k in LAYER_KEYS}
        args = {k: v for k, v in data.items() if k not in LAYER_KEYS}
        if "args" in args and isinstance(args["args"], dict) and len(args) == 1:
            return {**fixed, "args": args["args"]}
        return {**fixed, "args": args}

    @field_validator("repeat")
    @classmethod
    def _whole_repeat(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool) and v < 0:
            raise ValueError("repeat must be >= 0")
        return v

    @property
    def inputs(self) -> list[str] | None:
        if self.from_ is None:
            return None
        return [self.from_] if isinstance(self.from_, str) else list(self.from_)


class Check(Model):
    """A condition the parameters must meet, with the message a user sees when they do not."""

    that: bool | str
    message: str


class Block(Model):
    """A reusable, parameterised sub-graph. Its layers see the spec's parameters and variables, the
    block's own parameters and variables, and `input` (the value the block is applied to); or, with
    `inputs: [x, skip]`, those names, bound in order to the using layer's `from:` (a decoder level that
    merges the level below with a skip connection)."""

    doc: str = ""
    inputs: Annotated[list[str], Field(min_length=1)] | None = Field(
        None, description="names of the block's inputs, bound in order to the using layer's from: (default: one, input)"
    )
    params: dict[str, ParamDecl] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)
    checks: list[Check] = Field(default_factory=list)
    layers: list[Layer] = Field(min_length=1)
    output: str | None = None
    outputs: Annotated[list[str], Field(min_length=1)] | None = Field(
        None, description="layers a later layer may read as from: BLOCK.NAME, besides the block's output"
    )
    presets: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="other names for this block, each with parameter values it sets: "
        "{c3k2: {c3k: false}} (a layer's own arguments still win)",
    )


class Library(Model):
    """A block library: a file of blocks other specs bring into scope with `imports:`. Its blocks see only
    their own parameters, `in_shape` and `in_channels` (no spec's parameters), so they mean the same in
    every spec that imports them."""

    archspec: int
    name: str
    description: str = ""
    imports: list[str] = Field(default_factory=list)
    blocks: dict[str, Block] = Field(min_length=1)


class Rename(Model):
    """One rule of `weights: rename:`: our tensor names matching `ours` are looked up in a reference
    checkpoint as `ref` (archspec.paths)."""

    ours: str
    ref: str


class Weights(Model):
    """How the spec's tensor names map to its reference checkpoint's."""

    rename: list[Rename] = Field(default_factory=list)
    by_position: StrictBool = Field(True, description="pair tensors that no name pairs by their order (strictly)")


INIT_KEYS = ("op", "layer", "if")


class InitRule(Model):
    """One rule of `init:`: the layers it applies to (`op:` and/or a `layer:` glob, `if:`), and for each
    of their tensors (`weight`, `bias`, `out_proj.weight`, ...) a distribution. Later rules win."""

    op: str | Annotated[list[str], Field(min_length=1)] | None = None
    layer: str | None = None
    if_: StrictBool | str | None = Field(None, alias="if")
    tensors: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _collect_tensors(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fixed = {k: v for k, v in data.items() if k in INIT_KEYS}
        return {**fixed, "tensors": {k: v for k, v in data.items() if k not in INIT_KEYS}}

    @property
    def ops(self) -> list[str] | None:
        return None if self.op is None else [self.op] if isinstance(self.op, str) else list(self.op)


class Expect(Model):
    """Reference figures the built graph must have (checked with the spec's own parameter values)."""

    params: int | None = None
    macs: int | None = None
    output: list[int] | None = None
    outputs: list[list[int]] | None = None  # a network with several outputs: every output's shape, in order
    input: list[int] | None = None
    source: str = ""


class Input(Model):
    """`input: {shape: [$seq_len], dtype: int64}`: the per-sample input shape and its element type. The
    plain list form `input: [3, 224, 224]` is float32; int64 is for token ids, which an `embedding` turns
    into vectors (ops that compute with floats refuse them, AS504)."""

    shape: list[int | str] | str
    dtype: Literal["float32", "int64"] = Field("float32", description="float32, or int64 for token ids")


MAX_DYNAMIC = 2**20


class Dynamic(Model):
    """Input sizes a compiled artifact accepts at run time: `[min, max]` or `[min, opt, max]` for the batch
    and, where the family allows it, for the side of a [C, H, W] input (H and W vary independently) or the
    length T of a [T] or [T, D] input (`sequence`).
    They drive torch.export's dynamic shapes, ONNX's dynamic axes and the TensorRT optimisation profile."""

    batch: list[StrictInt] = Field(default_factory=lambda: [1, 256], min_length=2, max_length=3)
    resolution: list[StrictInt] | None = Field(None, min_length=2, max_length=3)
    sequence: list[StrictInt] | None = Field(
        None, min_length=2, max_length=3, description="the length T of a [T] or [T, D] input (token sequences)"
    )
    multiple: StrictInt = Field(
        1,
        ge=1,
        le=4096,
        description="the resolution's sides (or the sequence's length) "
        "are multiples of this: a detector whose maps halve five times takes multiples of 32",
    )

    @field_validator("batch", "resolution", "sequence")
    @classmethod
    def _ordered(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (v[0] < 1 or v != sorted(v)):
            raise ValueError("must be [min, max] or [min, opt, max] with 1 <= min <= opt <= max")
        if v is not None and v[-1] > MAX_DYNAMIC:  # checked here, not left to overflow inside torch.export
            raise ValueError(f"the largest size may be at most {MAX_DYNAMIC:,} (2**20)")
        return v

    @model_validator(mode="after")
    def _multiples(self) -> Dynamic:
        for key in ("resolution", "sequence"):
            values = getattr(self, key)
            if values is not None and any(v % self.multiple for v in values):
                raise ValueError(f"{key} {values}: with multiple: {self.multiple} every size must be a multiple of it")
        return self


class Spec(Model):
    archspec: int
    name: str
    description: str = ""
    paper: str = ""
    params: dict[str, ParamDecl] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = Field(default_factory=dict)
    checks: list[Check] = Field(default_factory=list)
    input: list[int | str] | str | Input
    imports: list[str] = Field(default_factory=list)
    blocks: dict[str, Block] = Field(default_factory=dict)
    layers: list[Layer] = Field(min_length=1)
    output: str | None = None
    outputs: Annotated[list[str], Field(min_length=1)] | None = Field(
        None, description="several outputs: the module returns these layers' values as a tuple, in this order"
    )
    expect: Expect | None = None
    dynamic: Dynamic | None = None
    weights: Weights | None = None
    init: list[InitRule] = Field(default_factory=list)

    @property
    def input_shape(self) -> tuple[list[int | str] | str, tuple[str, ...]]:
        """The input's shape as written (maybe an expression) and where: `input:` or `input: shape:`."""
        if isinstance(self.input, Input):
            return self.input.shape, ("input", "shape")
        return self.input, ("input",)

    @property
    def input_dtype(self) -> Literal["float32", "int64"]:
        return self.input.dtype if isinstance(self.input, Input) else "float32"


class SpecRef(Model):
    archspec: int
    name: str
    description: str = ""  # replaces the family's in list, summary and card (a row can be its own model)
    paper: str = ""
    use: str
    variant: str | None = None
    set: dict[str, Any] = Field(default_factory=dict)
    expect: Expect | None = None
    init: list[InitRule] = Field(default_factory=list)  # applied after the family's rules (they win)

    @model_validator(mode="before")
    @classmethod
    def _named_by_variant(cls, data: Any) -> Any:
        # A thin spec that picks a row is named after it unless it says otherwise (`name:` may be left out).
        if isinstance(data, dict) and "name" not in data and isinstance(data.get("variant"), str):
            return {**data, "name": data["variant"]}
        return data
