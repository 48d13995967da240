"""Spec -> IR graph. The only module that knows both the spec and the IR.

Lowering walks the layer list in order, expanding blocks and repeats into op nodes with dotted names
(`layer1.0.conv1`). Each node's output shape is inferred as it is created, because expressions may
read the shape of a layer's input (`in_channels`, `in_shape`): a DenseNet transition halves whatever
channel count reaches it.

Scoping: a layer's expressions see the spec's parameters and `vars`, the enclosing block's parameters
and `vars`, the repeat index, `in_channels` and `in_shape`. `from:` names earlier layers of the same
scope, or `input`, the scope's input. A layer whose `if:` is false is skipped and acts as identity:
references to it read its input. A layer with `repeat: n` becomes n chained copies named `name.0` ...
`name.{n-1}`; with n = 0 it is identity too.

Errors are collected: a layer that fails poisons its name, and layers reading a poisoned name are
skipped quietly, so one run reports every independent problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from archspec import init as init_data
from archspec.errors import Location, Path, SpecError, SpecErrors, did_you_mean, one_of
from archspec.expr import MAX_STEPS, ExprError, Meter, Value, resolve
from archspec.imports import BlockRef
from archspec.ir import INPUT_OP, VALUES, Dtype, Graph, Init, Naming, Node, Shape, numel
from archspec.limits import DEFAULT, Limits
from archspec.load import Document
from archspec.names import MODULE_ATTRIBUTES
from archspec.ops.base import OpDef, ShapeError
from archspec.params import COMMAND_LINE, bind
from archspec.paths import glob_matches
from archspec.registry import Registry
from archspec.spec import Check, InitRule, Layer, Repeat
from archspec.validate import Resolved

MAX_NODES = DEFAULT.nodes
MAX_REPEAT = DEFAULT.repeat
MAX_NUMEL = DEFAULT.tensor_elements  # elements of one sample's tensor
SCOPE_COPY_UNIT = 128  # names copied into a layer's scope per unit of work
STEPS_PER_UNIT = 16  # expression steps (archspec.expr.Meter) per unit of work


class _Abort(Exception):
    """A limit was hit: stop lowering at once (the error is already recorded)."""


class _Skip(Exception):
    """This layer failed (its error is recorded); carry on with the next."""


@dataclass(frozen=True)
class _Result:
    """What one layer gives its scope: the node later layers read by the layer's name, a block's declared
    outputs (read as NAME.OUTPUT), and every copy of a repeat in order (read as NAME.*)."""

    node: str
    named: Mapping[str, str] = field(default_factory=dict)
    copies: tuple[str, ...] = ()


COLLECT = ".*"  # from: "m.*" reads every copy of the repeated layer m


def fmt_shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


@dataclass
class _OwnInit:
    """Layers' own `init:` as lowering applies them: per node, tensor -> Init (recorded inside out, so the layer
    that applies a block wins over the block's own layers); per layer and tensor key, whether any application
    found the tensor (else AS436 once lowering is done) and, for that message, the tensors it had instead."""

    chosen: dict[str, dict[str, Init]] = field(default_factory=dict)
    keys: dict[tuple[Path, str], list[str] | None] = field(default_factory=dict)
    reported: set[Location | None] = field(default_factory=set)

    @staticmethod
    def find(key: str, owned: Mapping[str, tuple[Node, Mapping[str, Shape]]]) -> tuple[Node, str, Shape] | None:
        """The node and tensor `key` names. `owned` maps each node's path inside the applied layer ("" for an
        op layer's own node) to it and its tensors. `key` is a tensor of the layer itself (`weight`), or on a
        block a layer's path inside it and that layer's tensor (`conv.weight`; a `parameter` layer's own path
        names its tensor ""); the deepest layer path that has the tensor wins. Tries only the key's own cuts,
        so the cost does not grow with the size of the block."""
        cuts = (
            [(key, "")] + [(key[:k], key[k + 1 :]) for k in range(len(key) - 1, -1, -1) if key[k] == "."] + [("", key)]
        )
        for inner, tensor in cuts:
            if inner in owned and tensor in owned[inner][1]:
                node, weights = owned[inner]
                return node, tensor, weights[tensor]
        return None

    def seen(self, where: Path, key: str, found: bool, owned: Mapping[str, tuple[Node, Mapping[str, Shape]]]) -> None:
        if found:
            self.keys[(where, key)] = None
        elif (where, key) not in self.keys:
            self.keys[(where, key)] = [
                ".".join(p for p in (inner, tensor) if p) for inner, (_, weights) in owned.items() for tensor in weights
            ]

    def settle(self, graph: Graph, doc: Document) -> list[SpecError]:
        """Record the layers' own init on their nodes, over what init: rules chose; errors for tensor keys that
        no application of their layer found."""
        errors = []
        for (where, key), had in self.keys.items():
            if had is not None:
                at = (*where, "init", key)
                errors.append(
                    SpecError(
                        "AS436",
                        f"init: this layer has no tensor {key!r}.{did_you_mean(key, had)} "
                        f"Its tensors: {one_of(had) if had else 'none'}.",
                        doc.locate(at),
                        at,
                    )
                )
        for name, tensors in self.chosen.items():
            graph.replace(name, init=tuple({**dict(graph.node(name).init), **tensors}.items()))
        return errors


@dataclass
class _Lowerer:
    resolved: Resolved
    registry: Registry
    graph: Graph
    limits: Limits = DEFAULT
    errors: list[SpecError] = field(default_factory=list)
    global_env: dict[str, Value] = field(default_factory=dict)
    work: int = 0
    budget: int = 0
    deferred_locations: frozenset[Location | None] = frozenset()
    parents: dict[str, str] = field(default_factory=dict)  # every proper prefix of a node path -> a node under it
    use_site: tuple[str, Location] | None = None  # inside an imported block: the spec's layer using it, and where
    own_init: _OwnInit = field(default_factory=lambda: _OwnInit())  # layers' own init: (applied after the rules)

    def __post_init__(self) -> None:
        self.deferred_locations = frozenset(e.location for e in self.resolved.deferred)
        self.budget = self.limits.work_for(self.resolved.doc.size)

    @property
    def doc(self) -> Document:
        return self.resolved.doc

    def error(self, code: str, message: str, path: Path) -> None:
        location = self.doc.locate(path)
        if location in self.deferred_locations:
            return  # validation already explained the problem at this place
        if self.use_site is not None:  # the location is in a library: say where the spec uses it, too
            message += f" (in {self.use_site[0]!r}, which uses the imported block at {self.use_site[1]})"
        self.errors.append(SpecError(code, message, location, path))
        if len(self.errors) + len(self.resolved.deferred) >= self.limits.errors:
            raise _Abort()  # enough to act on; finding more would only cost time

    def spend(self, units: int, path: Path) -> None:
        """Count lowering work. The node limit bounds what is made; this bounds the effort, which
        layers that make nothing (repeat: 0, if: false) or read large values would otherwise escape."""
        self.work += units
        if self.work > self.budget:
            self.errors.append(
                SpecError(
                    "AS411",
                    f"expanding the spec takes more than {self.budget:,} steps of work "
                    f"(layer visits and expression evaluations; the budget is {self.limits.work_base:,} + "
                    f"{self.limits.work_per_char} per character of the spec, at most {self.limits.work:,}); "
                    "check nested repeat: counts, or raise --limit work_base=N",
                    self.doc.locate(path),
                    path,
                )
            )
            raise _Abort()

    def evaluate(self, value: Any, env: Mapping[str, Value], path: Path) -> Any:
        """Resolve expressions in `value`; on failure record a located error and raise _Skip."""
        # Never more steps than the work budget has left: comprehensions in every copy of a repeat
        # stop at the budget, not at the per-expression limit times the number of copies.
        meter = Meter(min(MAX_STEPS, max(1, self.budget - self.work) * STEPS_PER_UNIT))
        try:
            return resolve(value, env, meter)
        except ExprError as exc:
            self.error(exc.code, exc.message, path)
            raise _Skip() from None
        finally:
            self.spend(1 + meter.steps // STEPS_PER_UNIT, path)

    def checks_hold(self, checks: Sequence[Check], env: Mapping[str, Value]) -> bool:
        """Evaluate a spec's or block's `checks:`; record an AS209 error for each that fails."""
        ok = True
        for check in checks:
            path = (*check.where, "that")
            try:
                value = self.evaluate(check.that, env, path)
            except _Skip:
                ok = False
                continue
            if value is not True:
                self.error(
                    "AS209",
                    f"check failed: {check.message}"
                    + ("" if value is False else f" (that: gives {value!r}, not a boolean)"),
                    path,
                )
                ok = False
        return ok

    def eval_vars(self, table: Mapping[str, Any], env: dict[str, Value], where: Path) -> None:
        for name, value in table.items():
            try:
                env[name] = self.evaluate(value, env, (*where, name))
            except _Skip:
                continue

    # -- layers -------------------------------------------------------------------------------
    def lower_scope(
        self,
        layers: Sequence[Layer],
        prefix: str,
        inputs: Mapping[str, str],
        env: Mapping[str, Value],
        table: Mapping[str, BlockRef],
        outputs: Sequence[tuple[str | None, Path]],
    ) -> list[str | None]:
        """Lower one scope's layers; return the qualified names of its `outputs` (None if poisoned): each a
        layer of the scope named with the path where it is written, or None for the last layer. `inputs`
        binds the scope's input names (`input`, or a block's `inputs:`) to nodes; the first is the implicit
        input of the first layer. `table` holds the blocks this scope's layers may use."""
        names: dict[str, str | None] = dict(inputs)
        copies: dict[str, tuple[str, ...]] = {}
        skipped: set[str] = set()
        auto: dict[str, int] = {}
        previous: str | None = next(iter(inputs.values()))
        for layer in layers:
            self.spend(1, layer.where)
            local = layer.name or self._auto_name(layer.op, auto, names)
            block = table.get(layer.op)
            sources = self._sources(layer, names, copies, previous)
            if sources is None:
                self._poison(names, local, block)
                previous = None
                continue
            try:
                if layer.if_ is not None and not self._condition(layer, env):
                    # Skipped: the name reads the layer's input, unless a kept layer already holds it
                    # (alternatives such as `head` if wide / `head` if not wide, in either order).
                    passed = sources[0]
                    if layer.else_:
                        chosen = self._lookup(layer.else_, names, copies, (*layer.where, "else"))
                        passed = chosen[0] if chosen else passed
                    if local not in names or local in skipped:
                        names[local] = passed
                        copies[local] = ()
                        skipped.add(local)
                    previous = passed
                    continue
            except _Skip:
                self._poison(names, local, block)
                previous = None
                continue
            if local in names and local not in skipped:
                self.error(
                    "AS407",
                    f"a layer named {local!r} already exists in this scope; give one of them another name",
                    (*layer.where, "name") if layer.name else layer.where,
                )
                previous = None
                continue
            skipped.discard(local)
            try:
                result = self._repeat(layer, f"{prefix}{local}", sources, env, table)
            except _Skip:
                result = None
            if result is None:
                self._poison(names, local, block)
                previous = None
                continue
            names[local] = previous = result.node
            names.update((f"{local}.{k}", v) for k, v in result.named.items())
            copies[local] = result.copies
        found: list[str | None] = []
        for output, path in outputs:
            if output is None:
                found.append(previous)
                continue
            refs = self._lookup(output, names, copies, path)
            found.append(refs[0] if refs and len(refs) == 1 else None)
            if refs is not None and len(refs) != 1:
                self.error("AS401", f"output {output!r} names {len(refs)} layers; name one", path)
        return found

    @staticmethod
    def _poison(names: dict[str, str | None], local: str, block: BlockRef | None) -> None:
        """A failed layer's name (and its declared outputs) read as failed, so readers fail quietly."""
        names[local] = None
        for out in (block.block.outputs or ()) if block else ():
            names[f"{local}.{out}"] = None

    def _lookup(
        self, ref: str, names: Mapping[str, str | None], copies: Mapping[str, tuple[str, ...]], path: Path
    ) -> list[str] | None:
        """The nodes `ref` names in a scope: a layer, a block's output (NAME.OUTPUT) or every copy of a
        repeat (NAME.*); None with a recorded error when it names nothing, or a failed layer."""
        if ref.endswith(COLLECT) and ref[: -len(COLLECT)] in copies:
            return list(copies[ref[: -len(COLLECT)]])
        if ref in names:
            name = names[ref]
            return None if name is None else [name]
        base = ref[: -len(COLLECT)] if ref.endswith(COLLECT) else ref
        hint = did_you_mean(base, names)
        if ref.endswith(COLLECT) and base in names:
            hint = f" {base!r} is a block input, which has no copies."
        elif "." in ref and ref.rsplit(".", 1)[0] in names:
            hint = (
                f" {ref.rsplit('.', 1)[0]!r} has no output {ref.rsplit('.', 1)[1]!r}: a block names what may be read "
                "this way in its outputs:."
            )
        self.error(
            "AS401",
            f"from: {ref!r} is not an earlier layer of this scope.{hint} Names here: {one_of(list(names))}.",
            path,
        )
        return None

    @staticmethod
    def _auto_name(op: str, counts: dict[str, int], names: Mapping[str, Any]) -> str:
        """`relu`, `relu_1`, ...: never a name the scope has, nor an attribute of the built module."""
        while True:
            n = counts.get(op, 0)
            counts[op] = n + 1
            candidate = op if n == 0 else f"{op}_{n}"
            if candidate not in names and candidate not in MODULE_ATTRIBUTES:
                return candidate

    def _sources(
        self, layer: Layer, names: Mapping[str, str | None], copies: Mapping[str, tuple[str, ...]], previous: str | None
    ) -> list[str] | None:
        refs = layer.inputs
        if refs is None:
            return None if previous is None else [previous]
        if len(refs) > self.limits.inputs:
            self.error(
                "AS402",
                f"from: lists {len(refs)} inputs; a layer may have at most {self.limits.inputs} "
                "(raise --limit inputs=N)",
                (*layer.where, "from"),
            )
            return None
        sources: list[str] = []
        for k, ref in enumerate(refs):
            path = (*layer.where, "from") + ((k,) if isinstance(layer.from_, list) else ())
            found = self._lookup(ref, names, copies, path)
            if found is None:
                return None
            sources.extend(found)
        if len(sources) > self.limits.inputs:
            self.error(
                "AS402",
                f"from: gives {len(sources)} inputs; a layer may have at most {self.limits.inputs} "
                "(raise --limit inputs=N)",
                (*layer.where, "from"),
            )
            return None
        if not sources:
            self.error(
                "AS402",
                f"from: {refs!r} gives no input (a repeat of 0 copies, or a skipped layer, collected "
                "with .*); give the layer at least one",
                (*layer.where, "from"),
            )
            return None
        return sources

    def _condition(self, layer: Layer, env: Mapping[str, Value]) -> bool:
        value = self.evaluate(layer.if_, env, (*layer.where, "if"))
        if not isinstance(value, bool):
            self.error("AS408", f"if: gives {value!r}; it must be true or false", (*layer.where, "if"))
            raise _Skip()
        return value

    def _repeat(
        self, layer: Layer, name: str, sources: list[str], env: Mapping[str, Value], table: Mapping[str, BlockRef]
    ) -> _Result | None:
        if layer.repeat is None:
            result = self._apply(layer, name, sources, env, table)
            return None if result is None else _Result(result.node, result.named, (result.node,))
        spec = layer.repeat if isinstance(layer.repeat, Repeat) else Repeat(times=layer.repeat, index="i")
        path = (*layer.where, "repeat") + (("times",) if isinstance(layer.repeat, Repeat) else ())
        count = self.evaluate(spec.times, env, path)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            self.error("AS404", f"repeat: gives {count!r}; it must be a whole number >= 0", path)
            return None
        if count > self.limits.repeat:
            self.error(
                "AS404",
                f"repeat: gives {count}, above the limit of {self.limits.repeat} (raise --limit repeat=N)",
                path,
            )
            raise _Abort()
        if count == 0:
            if len(sources) != 1:
                self.error("AS402", "repeat: 0 makes this layer an identity, which needs exactly one input", path)
                return None
            return _Result(sources[0])
        inputs = sources
        made: list[str] = []
        current: _Result | None = None
        for k in range(count):
            before = len(self.graph)
            current = self._apply(layer, f"{name}.{k}", inputs, {**env, spec.index: k}, table)
            if current is None:
                return None
            made.append(current.node)
            if k == 0 and before + count * (len(self.graph) - before) > self.limits.nodes:
                # Copies are alike in size: refuse a repeat bomb now rather than after building it.
                self.error(
                    "AS405",
                    f"repeat: {count} copies of {len(self.graph) - before} node(s) each would grow the graph "
                    f"past {self.limits.nodes} nodes; check repeat: counts (or raise --limit nodes=N)",
                    path,
                )
                raise _Abort()
            inputs = [current.node]
        assert current is not None
        return _Result(current.node, current.named, tuple(made))

    def _apply(
        self, layer: Layer, name: str, sources: list[str], env: Mapping[str, Value], table: Mapping[str, BlockRef]
    ) -> _Result | None:
        first: Shape = self.graph.node(sources[0]).shape or ()
        self.spend(1 + len(env) // SCOPE_COPY_UNIT, layer.where)
        scope = {**env, "in_shape": first, "in_channels": first[0] if first else 0}
        args: dict[str, Any] = {}
        failed = False
        for key, value in layer.args.items():
            try:
                args[key] = self.evaluate(value, scope, (*layer.where, key))
            except _Skip:
                failed = True
        if failed:
            return None
        ref = table.get(layer.op)
        try:
            frozen, tensors = self._own_settings(layer, scope, args, ref)
        except _Skip:
            return None
        before = len(self.graph)
        if ref is not None:
            result = self._apply_block(layer, ref, name, sources, args)
        else:
            node = self._apply_op(layer, self.registry.op(layer.op), name, sources, args)
            result = None if node is None else _Result(node)
        if result is not None and (frozen or tensors):
            self._settle_own(layer, name, self.graph.added_since(before), frozen, tensors)
        return result

    def _own_settings(
        self, layer: Layer, scope: Mapping[str, Value], args: dict[str, Any], ref: BlockRef | None
    ) -> tuple[bool, dict[str, Init]]:
        """The layer's `trainable:` (whether it freezes its tensors) and its own `init:` evaluated, per tensor
        key. An op or block that declares an `init` argument of its own (parameter, layer_scale) gets `init:`
        as that argument instead, in `args`, as before the layer key existed."""
        frozen = False
        if layer.trainable is not None:
            at: Path = (*layer.where, "trainable")
            value = self.evaluate(layer.trainable, scope, at)
            if not isinstance(value, bool):
                self.error("AS203", f"trainable: gives {value!r}; it must be true or false", at)
                raise _Skip()
            frozen = not value
        tensors: dict[str, Init] = {}
        if layer.init is None:
            return frozen, tensors
        declared = ref.block.params if ref is not None else self.registry.op(layer.op).params.model_fields
        if "init" in declared:
            args["init"] = self.evaluate(layer.init, scope, (*layer.where, "init"))
            return frozen, tensors
        failed = False
        for key, rule in layer.init.items() if isinstance(layer.init, dict) else ():
            at = (*layer.where, "init", key)
            parsed = init_data.split_layer_rule(rule)
            if isinstance(parsed, str):  # validation reports it
                failed = True
                continue
            kind, raw = parsed
            try:
                evaluated = {
                    k: self.evaluate(v, scope, (*at, kind, k) if kind != init_data.VALUES else (*at, k))
                    for k, v in raw.items()
                }
            except _Skip:
                failed = True
                continue
            if kind == init_data.VALUES:
                flat = init_data.flat_values(evaluated[init_data.VALUES])
                made: Init | str = flat if isinstance(flat, str) else Init(VALUES, (), self.doc.locate(at), flat)
            else:
                made = init_data.make(kind, evaluated)
            if isinstance(made, str):
                self.error(
                    "AS435" if kind == init_data.VALUES else "AS438",
                    f"init {key}: {made}",
                    (*at, kind) if kind == init_data.VALUES else at,
                )
                failed = True
                continue
            tensors[key] = made if made.rule is not None else Init(made.kind, made.args, self.doc.locate(at))
        if failed:
            raise _Skip()
        return frozen, tensors

    def _settle_own(
        self, layer: Layer, name: str, made: Sequence[Node], frozen: bool, tensors: Mapping[str, Init]
    ) -> None:
        """Apply a layer's `trainable: false` and own `init:` to the nodes one application of it made (the op's
        node, or every node of the block, whose tensors the keys name by their path inside it: conv.weight)."""
        if frozen:
            for node in made:
                self.graph.replace(node.name, trainable=False)
        if not tensors:
            return
        owned = {
            node.name[len(name) + 1 :]: (
                node,
                self.registry.op(node.op).weights(node.params, self.graph.input_shapes(node)),
            )
            for node in made
        }
        for key, init in tensors.items():
            target = self.own_init.find(key, owned)
            self.own_init.seen(layer.where, key, target is not None, owned)
            if target is None:
                continue
            node, tensor, shape = target
            if init.kind == VALUES and len(init.values) != numel(shape):
                at = (*layer.where, "init", key, init_data.VALUES)
                if self.doc.locate(at) not in self.own_init.reported:
                    self.own_init.reported.add(self.doc.locate(at))
                    full = ".".join(p for p in (node.name, tensor) if p)
                    self.error(
                        "AS435",
                        f"init {key}: values: gives {len(init.values)} numbers, but {full} has shape "
                        f"{fmt_shape(shape)} ({numel(shape)} elements)",
                        at,
                    )
                continue
            self.own_init.chosen.setdefault(node.name, {})[tensor] = init

    def _apply_block(
        self, layer: Layer, ref: BlockRef, name: str, sources: list[str], args: dict[str, Any]
    ) -> _Result | None:
        block = ref.block
        declared = block.inputs or ["input"]
        if len(sources) != len(declared):
            at = (*layer.where, "from") if layer.from_ is not None else layer.where
            if block.inputs is None:
                self.error(
                    "AS402",
                    f"block {layer.op!r} takes one input; from: gives {len(sources)}. A block that "
                    "merges several takes them by name: declare inputs: [x, skip] on the block",
                    at,
                )
            else:
                copy = layer.inputs is not None and len(layer.inputs) != len(sources)  # a later copy of a repeat
                given = (
                    "a repeat: copy after the first gets 1 (the previous copy's output); write the copies out instead"
                    if copy
                    else f"{'from: gives' if layer.from_ is not None else 'this layer gets'} "
                    f"{len(sources)}. List them in from: in that order, e.g. from: [{', '.join(declared)}]"
                )
                self.error(
                    "AS440", f"block {layer.op!r} takes {len(declared)} inputs ({', '.join(declared)}); {given}", at
                )
            return None
        settings = {k: (v, self.doc.locate((*block.where, "presets", ref.name, k))) for k, v in ref.preset.items()}
        settings.update((k, (v, self.doc.locate((*layer.where, k)))) for k, v in args.items())
        try:
            values = bind(
                block.params, settings, what=f"argument of block {layer.op!r}", required_at=self.doc.locate(layer.where)
            )
        except SpecErrors as exc:
            self.errors.extend(exc.errors)
            return None
        shape = self.graph.node(sources[0]).shape or ()
        seen = {} if ref.isolated else self.global_env  # an imported block sees only its own parameters
        self.spend(len(seen) // SCOPE_COPY_UNIT, layer.where)
        env: dict[str, Value] = {**seen, **values, "in_shape": shape, "in_channels": shape[0] if shape else 0}
        outer = self.use_site
        if ref.isolated and outer is None:  # entering a library from the spec's own layers
            self.use_site = (name, self.doc.locate(layer.where))
        try:
            return self._lower_block(ref, name, declared, sources, env)
        finally:
            self.use_site = outer

    def _lower_block(
        self, ref: BlockRef, name: str, declared: list[str], sources: list[str], env: dict[str, Value]
    ) -> _Result | None:
        block = ref.block
        self.eval_vars(block.vars, env, (*block.where, "vars"))
        if not self.checks_hold(block.checks, env):
            return None
        named = block.outputs or []
        wanted = [(block.output, (*block.where, "output"))] + [
            (out, (*block.where, "outputs", k)) for k, out in enumerate(named)
        ]
        found = self.lower_scope(block.layers, f"{name}.", dict(zip(declared, sources)), env, ref.scope, wanted)
        if any(node is None for node in found):
            return None
        return _Result(found[0], dict(zip(named, found[1:])))  # type: ignore[arg-type]

    def _apply_op(
        self, layer: Layer, op: OpDef[Any], name: str, sources: list[str], args: dict[str, Any]
    ) -> str | None:
        low, high = op.arity
        if len(sources) < low or (high is not None and len(sources) > high):
            wanted = f"{low}" if low == high else f"at least {low}" if high is None else f"{low} to {high}"
            self.error(
                "AS402",
                f"{op.name} takes {wanted} input(s); this layer gets {len(sources)}"
                + ("; list them in from:" if len(sources) < low else ""),
                layer.where,
            )
            return None
        try:
            params = op.params.model_validate(args)
        except ValidationError as exc:
            for err in exc.errors():
                key = next((p for p in err["loc"] if isinstance(p, str) and p in op.params.model_fields), None)
                path = (*layer.where, key) if key in args else layer.where  # args: init: too, on an op that takes it
                what = f"argument {key!r}" if key else "arguments"
                got = f" (got {err['input']!r})" if key and err["type"] != "missing" else ""
                self.error("AS403", f"{op.name} {what}: {err['msg']}{got}", path)
                break  # one message per layer: union alternatives would repeat it
            return None
        except Exception as exc:  # a plugin's own validator failed: its bug, reported as such
            self.plugin_failed(op, "parameter model", exc, layer.where)
            return None
        shapes = [self.graph.node(s).shape for s in sources]
        try:
            shape = op.shape(params, shapes)  # type: ignore[arg-type]
            if not isinstance(shape, tuple) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape
            ):
                raise TypeError(f"the shape function returned {shape!r}, not a tuple of positive ints")
        except ShapeError as exc:
            if exc.input is None:
                given = "; ".join(f"{s!r} gives {fmt_shape(self.graph.node(s).shape or ())}" for s in sources)
            else:
                src = sources[exc.input]
                given = f"{src!r} gives {fmt_shape(self.graph.node(src).shape or ())}"
            self.error("AS501", f"{op.name} {name!r} {exc.expects}; {given}", layer.where)
            return None
        except Exception as exc:
            self.plugin_failed(op, "shape function", exc, layer.where)
            return None
        if numel(shape) > self.limits.tensor_elements:
            self.error(
                "AS502",
                f"{op.name} {name!r} makes a {fmt_shape(shape)} tensor per sample, above the limit of "
                f"{self.limits.tensor_elements} elements (raise --limit tensor_elements=N)",
                layer.where,
            )
            raise _Abort()
        if len(self.graph) >= self.limits.nodes:
            self.error(
                "AS405",
                f"the graph grows past {self.limits.nodes} nodes here; check repeat: counts (or raise --limit nodes=N)",
                layer.where,
            )
            raise _Abort()
        if not self._path_is_free(name, layer):
            return None
        dtype = self._dtype(op, name, sources, layer)
        ties = self._ties(op, params, shapes, name, layer)  # type: ignore[arg-type]
        if dtype is None or ties is None:
            return None
        self.graph.add(
            Node(
                name,
                op.name,
                params,
                tuple(sources),
                shape,
                self.doc.locate(layer.where),
                dtype=dtype,
                ties=ties,
                used_at=self.use_site,
            )
        )
        return name

    def _dtype(self, op: OpDef[Any], name: str, sources: list[str], layer: Layer) -> Dtype | None:
        """The element type of the layer's value, from its inputs' and what the op does with integers (OpDef.integer);
        None with an AS504 error where the op cannot take them."""
        dtypes = [self.graph.node(s).dtype for s in sources]
        ids = [s for s, d in zip(sources, dtypes) if d == "int64"]
        if op.integer == "lookup":
            floats = [s for s, d in zip(sources, dtypes) if d != "int64"]
            if not floats:
                return "float32"
            self.error(
                "AS504",
                f"{op.name} {name!r} looks up integer token ids, but {floats[0]!r} gives float values; "
                "read the int64 input (input: {shape: [...], dtype: int64}) or what only reshapes or slices it",
                layer.where,
            )
            return None
        if not ids:
            return "float32"
        if op.integer == "pass" and len(ids) == len(sources):
            return "int64"
        if op.integer == "pass":
            self.error(
                "AS504",
                f"{op.name} {name!r} mixes int64 token ids ({ids[0]!r}) with float values; embed the ids "
                "first (op: embedding)",
                layer.where,
            )
            return None
        self.error(
            "AS504",
            f"{op.name} {name!r} computes with floats, but {ids[0]!r} gives int64 token ids "
            f"{fmt_shape(self.graph.node(ids[0]).shape or ())}; turn them into vectors first (op: embedding)",
            layer.where,
        )
        return None

    def _ties(
        self, op: OpDef[Any], params: Any, shapes: list[Shape], name: str, layer: Layer
    ) -> tuple[tuple[str, str], ...] | None:
        """The tensors the layer uses from an earlier layer (OpDef.ties: a tied LM head), each resolved to that
        layer's full tensor name and checked; None with an AS443 error."""
        found: list[tuple[str, str]] = []
        for leaf, (ref, shape) in op.ties(params, shapes).items():
            at = (*layer.where, "tie") if "tie" in layer.args else layer.where
            owner, tensor = (ref, "weight") if ref in self.graph else (ref.rpartition(".")[0], ref.rpartition(".")[2])
            if owner not in self.graph or owner == "input" or owner == name:
                self.error(
                    "AS443",
                    f"{op.name} {name!r}: tie: {ref!r} names no earlier layer (a layer's full path from "
                    "the network's root, as in the state dict, e.g. transformer.wte, or its tensor, "
                    "transformer.wte.weight)",
                    at,
                )
                return None
            node = self.graph.node(owner)
            owned = self.registry.op(node.op).weights(node.params, self.graph.input_shapes(node))
            if tensor not in owned:
                self.error(
                    "AS443",
                    f"{op.name} {name!r}: tie: layer {owner!r} ({node.op}) has no tensor {tensor!r} of its "
                    f"own; its tensors: {', '.join(owned) or 'none'}",
                    at,
                )
                return None
            if tuple(owned[tensor]) != tuple(shape):
                self.error(
                    "AS443",
                    f"{op.name} {name!r}: tie: {owner}.{tensor} is {fmt_shape(owned[tensor])} but this "
                    f"layer's {leaf} must be {fmt_shape(shape)}",
                    at,
                )
                return None
            found.append((leaf, f"{owner}.{tensor}"))
        return tuple(found)

    def _path_is_free(self, name: str, layer: Layer) -> bool:
        """A node's path is a module path in the built network: it may not be another node's path, nor a
        parent of one (`x` beside `x.0`), which dotted and numbered names could otherwise produce."""
        where = (*layer.where, "name") if layer.name else layer.where
        parts = name.split(".")
        other = name if name in self.graph else self.parents.get(name)
        if other is None:
            other = next((p for p in (".".join(parts[:k]) for k in range(1, len(parts))) if p in self.graph), None)
        if other == name:
            self.error(
                "AS430",
                f"the module path {name!r} is already another layer's (a repeat's copies are named "
                "NAME.0, NAME.1, ...); rename one of them",
                where,
            )
            return False
        if other is not None:
            self.error(
                "AS430",
                f"layer {name!r} clashes with layer {other!r}: one module path contains the other "
                "(a dotted or numbered name beside a repeat's copies?); rename one",
                where,
            )
            return False
        for k in range(1, len(parts)):
            self.parents.setdefault(".".join(parts[:k]), name)
        return True

    def plugin_failed(self, op: OpDef[Any], part: str, exc: Exception, path: Path) -> None:
        provider = self.registry.ops[op.name].provider if op.name in self.registry.ops else "an unknown package"
        self.error(
            "AS805",
            f"op {op.name!r}: its {part} raised {type(exc).__name__}: {exc}. This is a bug in {provider}; "
            "report it there",
            path,
        )


def lower(
    resolved: Resolved,
    registry: Registry,
    overrides: Mapping[str, Any] | None = None,
    override_location: Location = COMMAND_LINE,
    limits: Limits = DEFAULT,
) -> Graph:
    """Build the IR graph of a resolved spec with parameter `overrides`; raise SpecErrors on any problem."""
    spec, doc = resolved.spec, resolved.doc
    settings = {k: (s.value, s.location) for k, s in resolved.settings.items()}
    settings.update({k: (v, override_location) for k, v in (overrides or {}).items()})
    values = bind(spec.params, settings, required_at=doc.locate(("params",)))
    lowerer = _Lowerer(resolved, registry, Graph(resolved.name), limits)
    env = dict(values)
    try:
        lowerer.eval_vars(spec.vars, env, ("vars",))
        if lowerer.errors:  # layers would only repeat these as unknown names
            raise SpecErrors([*resolved.deferred, *lowerer.errors])
        lowerer.checks_hold(spec.checks, env)  # a failed check does not stop lowering: report what else is wrong
        lowerer.global_env = env
        shape = _input_shape(lowerer, env)
        lowerer.graph.add(Node("input", INPUT_OP, None, (), shape, doc.locate(("input",)), dtype=spec.input_dtype))
        wanted = (
            [(out, ("outputs", k)) for k, out in enumerate(spec.outputs)]
            if spec.outputs
            else [(spec.output, ("output",))]
        )
        outputs = lowerer.lower_scope(spec.layers, "", {"input": "input"}, env, resolved.blocks, wanted)
    except _Abort:
        outputs = [None]
    if lowerer.errors or resolved.deferred:
        found = [*resolved.deferred, *lowerer.errors]
        raise SpecErrors(found, limits.errors, stopped=len(found) >= limits.errors)
    if any(out is None or out == "input" for out in outputs):
        raise SpecErrors(
            [SpecError("AS410", "the network has no op layers after its input; add layers", doc.locate(("layers",)))]
        )
    graph = lowerer.graph
    graph.outputs = tuple(out for out in outputs if out is not None)
    errors = _unread_layers(graph, doc)
    errors += _assign_init(
        lowerer,
        [(rule, doc, ("init", k)) for k, rule in enumerate(spec.init)]
        + [(rule, resolved.thin_doc or doc, ("init", k)) for k, rule in enumerate(resolved.thin_init)],
    )
    errors += lowerer.own_init.settle(graph, doc)  # after the rules: a layer's own init: wins
    if errors:
        raise SpecErrors(errors, limits.errors)
    if spec.weights is not None:
        graph.naming = Naming(
            tuple((r.ours, r.ref, doc.locate(("weights", "rename", k))) for k, r in enumerate(spec.weights.rename)),
            spec.weights.by_position,
        )
    graph.lint()
    return graph


def _unread_layers(graph: Graph, doc: Document) -> list[SpecError]:
    """A layer whose output nothing reads would be counted and computed for nothing (a branch a merge
    forgot, or a merge that was skipped): an error at the layer, never a silent cost."""
    reaches = graph.reaches()
    needed = 0
    for out in graph.outputs:
        needed |= reaches[out]
    errors = []
    reported: set[Location | None] = set()
    for k, node in enumerate(graph):
        if not needed >> k & 1 and node.source not in reported:
            reported.add(node.source)
            errors.append(
                SpecError(
                    "AS434",
                    f"nothing reads the output of layer {node.name!r} ({node.op}), so it "
                    f"would not reach the network's output; use it in a later layer's from:, or remove it{node.place}",
                    node.source,
                    (),
                )
            )
    return errors


def _network_tensors(graph: Graph, registry: Registry, cache: set[str]) -> set[str]:
    """The names of every tensor any layer of the network owns (weight, bias, ...), computed once."""
    if not cache:
        for node in graph.ops:
            cache.update(registry.op(node.op).weights(node.params, graph.input_shapes(node)))
        cache.add("")  # computed, even for a network without tensors
    return cache


def _assign_init(lowerer: _Lowerer, rules: Sequence[tuple[InitRule, Document, Path]]) -> list[SpecError]:
    """Evaluate the init: rules and record on each matching node how to fill each of its tensors.
    Rules apply in order, so a later rule (a thin spec's, or a more specific one below) wins."""
    graph, registry = lowerer.graph, lowerer.registry
    errors: list[SpecError] = []
    chosen: dict[str, dict[str, Init]] = {}
    network_tensors: set[str] = set()  # filled on first use by _network_tensors
    for rule, doc, path in rules:
        # fail is called only within this iteration, so reading the loop's doc is intended
        def fail(code: str, message: str, at: Path) -> None:
            errors.append(SpecError(code, message, doc.locate(at), at))  # noqa: B023

        def evaluated(raw: Any, at: Path) -> Any:
            try:
                return resolve(raw, lowerer.global_env, Meter())
            except ExprError as exc:
                fail(exc.code, exc.message, at)
                raise _Skip() from None

        try:
            active = rule.if_ is None or evaluated(rule.if_, (*path, "if"))
        except _Skip:
            continue
        if not isinstance(active, bool):
            fail("AS408", f"if: gives {active!r}; it must be true or false", (*path, "if"))
            continue
        if not active:
            continue
        dists: dict[str, Init] = {}
        for tensor, value in rule.tensors.items():
            parsed = init_data.split(value)
            if isinstance(parsed, str):
                fail("AS438", f"init {tensor}: {parsed}", (*path, tensor))
                continue
            name, raw = parsed
            try:
                args = {k: evaluated(v, (*path, tensor, name, k)) for k, v in raw.items()}
            except _Skip:
                continue
            made = init_data.make(name, args)
            if isinstance(made, str):
                fail("AS438", f"init {tensor}: {made}", (*path, tensor))
                continue
            dists[tensor] = Init(made.kind, made.args, doc.locate((*path, tensor)))
        found: set[str] = set()
        matched: tuple[str, list[str]] | None = None  # a layer the rule matched, and its tensors
        for node in graph.ops:
            if (rule.ops is not None and node.op not in rule.ops) or (
                rule.layer is not None and not glob_matches(rule.layer, node.name)
            ):
                continue
            op = registry.op(node.op)
            owned = op.weights(node.params, graph.input_shapes(node))
            matched = matched or ((node.name, list(owned)) if owned else None)
            for tensor, init in dists.items():
                if tensor in owned:
                    chosen.setdefault(node.name, {})[tensor] = init
                    found.add(tensor)
        for tensor in dists:
            # A family's rule may name a tensor that some configurations lack (conv biases only where
            # squeeze-excitation is on): an error only where nothing in the network has such a tensor (a typo).
            if matched and tensor not in found and tensor not in _network_tensors(graph, registry, network_tensors):
                fail(
                    "AS439",
                    f"init: no layer this rule matches has a tensor {tensor!r} (layer {matched[0]!r} has "
                    f"{', '.join(matched[1])})",
                    (*path, tensor),
                )
    for name, tensors in chosen.items():
        graph.replace(name, init=tuple(tensors.items()))
    return errors


def _input_shape(lowerer: _Lowerer, env: Mapping[str, Value]) -> Shape:
    written, at = lowerer.resolved.spec.input_shape  # `input: [...]`, or `input: {shape: [...], dtype: ...}`
    try:
        shape = lowerer.evaluate(written, env, at)
    except _Skip:
        raise SpecErrors([*lowerer.resolved.deferred, *lowerer.errors]) from None
    if (
        not isinstance(shape, tuple)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
    ):
        raise SpecErrors(
            [
                SpecError(
                    "AS203",
                    f"input: gives {shape!r}; it must be a list of positive whole numbers, e.g. [3, $resolution, $resolution]",
                    lowerer.doc.locate(at),
                    at,
                )
            ]
        )
    limit = lowerer.limits.tensor_elements
    if numel(shape) > limit:
        raise SpecErrors(
            [
                SpecError(
                    "AS502",
                    f"input {fmt_shape(shape)} is above the limit of {limit} elements per sample "
                    "(raise --limit tensor_elements=N)",
                    lowerer.doc.locate(at),
                    at,
                )
            ]
        )
    return shape
