"""Plain data -> typed spec, with every error located and all of them reported at once.

`resolve_file` is the entry point: it loads a spec file, validates it, follows a thin spec's `use:` to
its family spec, and returns a `Resolved` spec: the full spec plus the parameter values that the
variant and the thin spec choose, each remembered with where it was written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Set
from dataclasses import dataclass, field, replace
from itertools import chain
import os
from pathlib import Path as FsPath
from typing import Any

from pydantic import BaseModel, ValidationError

from archspec import init as init_data
from archspec.errors import Location, Path, SpecError, SpecErrors, did_you_mean, one_of, suggestion_budget
from archspec.expr import FUNCTIONS, ExprError, expression_source, is_expression, names_used
from archspec.imports import (
    STDLIB_PREFIX,
    BlockRef,
    display_path,
    find as find_import,
    import_key,
    relative_path,
    stdlib_libraries,
)
from archspec.limits import DEFAULT, Limits
from archspec.load import Document, load_file
from archspec.names import layer_name_problem, name_problem, param_problem
from archspec.ops.base import RESERVED_LAYER_KEYS
from archspec.params import COMMAND_LINE, type_error
from archspec.paths import PatternError, glob_problem, parse_rename
from archspec.registry import Registry
from archspec.spec import Block, InitRule, Layer, Library, Model, ParamDecl, Repeat, Spec, SpecRef

FORMAT_VERSION = 1
MAX_USE_DEPTH = DEFAULT.use_depth


@dataclass(frozen=True)
class Setting:
    """A parameter value chosen outside the parameter's declaration, and where it was written."""

    value: Any
    location: Location | None


@dataclass(frozen=True)
class Resolved:
    spec: Spec
    doc: Document  # the full spec's document: locations of everything in `spec`
    name: str
    variant: str | None = None
    settings: Mapping[str, Setting] = field(default_factory=dict)
    expect_doc: Document | None = None  # where `spec_expect` was written
    ref: SpecRef | None = None
    deferred: tuple[SpecError, ...] = ()  # errors found by validation that lowering reports with its own
    thin_init: tuple[InitRule, ...] = ()  # the thin spec's own init: rules, applied after the family's
    thin_doc: Document | None = None  # where they were written
    blocks: Mapping[str, BlockRef] = field(default_factory=dict)  # the blocks the spec's layers may use

    @property
    def description(self) -> str:
        """A thin spec's own description, else its family's."""
        return self.ref.description if self.ref is not None and self.ref.description else self.spec.description

    @property
    def paper(self) -> str:
        return self.ref.paper if self.ref is not None and self.ref.paper else self.spec.paper

    @property
    def expect(self) -> Any:
        if self.expect_doc is None:
            return None
        if self.ref is not None:
            return self.ref.expect
        return self.spec.expect


# -- pydantic errors -> located spec errors ------------------------------------------------------
_CODE_BY_TYPE = {"missing": "AS201", "extra_forbidden": "AS202"}


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed in the mapping at `loc` (for did-you-mean on unknown keys); best effort."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {f.alias or name: f for name, f in current.model_fields.items()}
            if part not in fields:
                return []
            current = fields[part].annotation
        else:
            args = [a for a in getattr(current, "__args__", ()) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            current = models[0] if models else (args[-1] if args else None)
            if (
                isinstance(current, type)
                and issubclass(current, BaseModel)
                and isinstance(part, str)
                and part in {f.alias or n for n, f in current.model_fields.items()}
            ):
                return _fields_at(current, (part,))
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items() if name != "args"]
    return []


def _located(doc: Document, exc: ValidationError, model: type[BaseModel]) -> list[SpecError]:
    errors = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        kind = err["type"]
        code = _CODE_BY_TYPE.get(kind, "AS203")
        key = loc[-1] if loc else ""
        if kind == "extra_forbidden":
            allowed = _fields_at(model, loc[:-1])
            message = f"unknown key {key!r}.{did_you_mean(str(key), allowed)}"
            if allowed:
                message += f" Allowed here: {one_of(allowed)}."
            location = doc.locate_key(loc)
        elif kind == "missing":
            message = f"missing required key {key!r}; add it here"
            location = doc.locate(loc[:-1])
        else:
            where = f"{key!r}: " if loc else ""
            message = f"{where}{err['msg'].rstrip('.')} (got {err.get('input')!r})"
            location = doc.locate(loc)
        errors.append(SpecError(code, message, location, loc))
    # pydantic reports each alternative of a union; one located message per place is enough.
    unique: dict[tuple[Location | None, str], SpecError] = {}
    for e in errors:
        unique.setdefault((e.location, e.code), e)
    return list(unique.values())


def _remember_paths(model: Model, path: Path) -> None:
    model._where = path
    for name, value in model:
        alias = type(model).model_fields[name].alias or name
        if isinstance(value, Model):
            _remember_paths(value, (*path, alias))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Model):
                    _remember_paths(item, (*path, alias, i))
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, Model):
                    _remember_paths(item, (*path, alias, key))


# -- checks pydantic cannot make ---------------------------------------------------------------
def _check_param_decls(doc: Document, decls: Mapping[str, ParamDecl], where: Path) -> Iterable[SpecError]:
    for name, decl in decls.items():
        path = (*where, name)
        problem = param_problem(name)
        if problem or name in RESERVED_LAYER_KEYS:
            yield SpecError(
                "AS203",
                f"{name!r} cannot be a parameter name: {problem or 'it is a layer key'}; "
                f"use an identifier not in {sorted(RESERVED_LAYER_KEYS)}",
                doc.locate_key(path),
                path,
            )
        if not decl.required and is_expression(decl.default):
            yield SpecError(
                "AS433",
                f"default of {name!r} is an expression; a default is a plain value. Compute "
                "derived values in vars: (e.g. vars: {width: '${base * 2}'}) and read those",
                doc.locate(path),
                path,
            )
        elif not decl.required:
            problem = type_error(decl, decl.default)
            if problem:
                yield SpecError("AS208", f"default of {name!r}: {problem}", doc.locate(path), path)


def _check_var_names(doc: Document, table: Mapping[str, Any], where: Path) -> Iterable[SpecError]:
    for name in table:
        problem = param_problem(name)
        if problem:
            path = (*where, name)
            yield SpecError("AS203", f"{name!r} cannot be a variable name: {problem}", doc.locate_key(path), path)


def _name_error(doc: Document, name: str) -> Iterable[SpecError]:
    problem = name_problem(name)
    if problem and "name" not in doc.data:
        yield SpecError(
            "AS409",
            f"without name:, a spec is named after its file, and {name!r} cannot be a name: {problem}; add name: NAME",
            doc.locate(()),
            ("name",),
        )
    elif problem:
        yield SpecError(
            "AS409", f"name: {problem}; the name is also the default output file name", doc.locate(("name",)), ("name",)
        )


def _check_names(doc: Document, spec: Spec | SpecRef) -> Iterable[SpecError]:
    """Names that become file names, identifiers and module attributes: one rule (archspec.names)."""
    yield from _name_error(doc, spec.name)
    if isinstance(spec, SpecRef):
        return
    for variant in spec.variants:
        problem = name_problem(variant)
        if problem:
            at: Path = ("variants", variant)
            yield SpecError("AS409", f"variant {variant!r}: {problem}", doc.locate_key(at), at)
    yield from _check_block_names(doc, spec.layers, spec.blocks)


def _check_block_names(doc: Document, layers: list[Layer], blocks: Mapping[str, Block]) -> Iterable[SpecError]:
    names: list[tuple[str, Path]] = [(name, ("blocks", name)) for name in blocks]
    names += [(alias, ("blocks", name, "presets", alias)) for name, block in blocks.items() for alias in block.presets]
    for block_name, at in names:
        problem = name_problem(block_name, module_attribute=True)
        if problem:
            yield SpecError("AS409", f"block {block_name!r}: {problem}", doc.locate_key(at), at)
    for layer, scope in _layers_in(layers, blocks):
        if layer.name is not None:
            problem = layer_name_problem(layer.name, top_level=scope is None)
            if problem:
                where = (*layer.where, "name")
                yield SpecError("AS409", f"layer name {layer.name!r}: {problem}", doc.locate(where), where)


def _layers_in(layers: list[Layer], blocks: Mapping[str, Block]) -> Iterable[tuple[Layer, str | None]]:
    for layer in layers:
        yield layer, None
    for block_name, block in blocks.items():
        for layer in block.layers:
            yield layer, block_name


def _check_layers(
    doc: Document, layers: list[Layer], blocks: Mapping[str, Block], visible: Mapping[str, BlockRef], registry: Registry
) -> Iterable[SpecError]:
    """Every layer names a known op or a block in scope (`visible`: the file's own and imported), with
    arguments it takes."""
    known = set(registry.ops) | set(visible)
    for layer, _ in _layers_in(layers, blocks):
        path = layer.where
        if layer.op in visible:
            allowed = list(visible[layer.op].block.params)
        elif layer.op in registry.ops:
            allowed = list(registry.op(layer.op).params.model_fields)
        elif registry.conflict("op", layer.op):
            yield SpecError("AS802", registry.conflict("op", layer.op) or "", doc.locate((*path, "op")), (*path, "op"))
            continue
        else:
            yield SpecError(
                "AS204",
                f"unknown op or block {layer.op!r}.{did_you_mean(layer.op, known)} "
                "Run `archspec list` for the ops (built-in and from installed plugins; an op from a plugin "
                "needs that plugin installed, and --no-plugins leaves it out) and the block libraries; blocks "
                "are declared under blocks: or brought in with imports:.",
                doc.locate((*path, "op")),
                (*path, "op"),
            )
            continue
        yield from _check_inputs(doc, layer)
        for arg in layer.args:
            if arg not in allowed:
                yield SpecError(
                    "AS403",
                    f"{layer.op!r} has no argument {arg!r}.{did_you_mean(arg, allowed)}"
                    f" Its arguments: {one_of(allowed) or 'none'}.",
                    doc.locate_key((*path, arg)),
                    (*path, arg),
                )
        if layer.init is not None and "init" not in allowed:  # else it is the op's (or block's) own argument
            yield from _check_layer_init(doc, layer)


def _check_layer_init(doc: Document, layer: Layer) -> Iterable[SpecError]:
    """A layer's own init: maps its tensors (on a block, paths inside it) to rules; lowering checks the
    tensors exist and the values fit them."""
    at = (*layer.where, "init")
    if not isinstance(layer.init, dict) or not layer.init:
        yield SpecError(
            "AS438",
            f"init: {layer.init!r}; a layer's init: maps its tensors to rules, e.g. "
            "init: {weight: {values: [...]}, bias: zeros}",
            doc.locate(at),
            at,
        )
        return
    for tensor, value in layer.init.items():
        parsed = init_data.split_layer_rule(value)
        if isinstance(parsed, str):
            yield SpecError("AS438", f"init {tensor}: {parsed}", doc.locate((*at, tensor)), (*at, tensor))


def _check_inputs(doc: Document, layer: Layer) -> Iterable[SpecError]:
    """from: names layers (never an expression), and a skippable layer with several inputs says which
    one passes on when it is skipped (else:), so a skipped merge cannot silently drop a branch."""
    refs = layer.inputs or []
    for k, ref in enumerate(refs):
        if is_expression(ref):
            at = (*layer.where, "from") + ((k,) if isinstance(layer.from_, list) else ())
            yield SpecError(
                "AS432",
                f"from: {ref!r} is an expression; from: names earlier layers (or input) as written. "
                "To choose between inputs, write both layers with if: and give them the same name, or "
                "use a layer's else:",
                doc.locate(at),
                at,
            )
    if layer.else_ is not None:
        at = (*layer.where, "else")
        if layer.if_ is None:
            yield SpecError(
                "AS431", "else: names the input a skipped layer passes on; it needs an if:", doc.locate(at), at
            )
        elif layer.else_ not in refs:
            yield SpecError(
                "AS431",
                f"else: {layer.else_!r} must be one of this layer's from: inputs ({', '.join(refs) or 'none'})",
                doc.locate(at),
                at,
            )
    elif layer.if_ is not None and len(refs) > 1:
        yield SpecError(
            "AS431",
            f"this layer has {len(refs)} inputs and an if:; say which input passes on when it is "
            f"skipped, e.g. else: {refs[0]}",
            doc.locate((*layer.where, "if")),
            (*layer.where, "if"),
        )


MAX_RULES = 200  # rename and init rules each: every rule is tried on every tensor or layer, so bound them


def _check_weights(doc: Document, spec: Spec) -> Iterable[SpecError]:
    if spec.weights is None:
        return
    if len(spec.weights.rename) > MAX_RULES:
        yield SpecError(
            "AS437",
            f"{len(spec.weights.rename)} rename rules; at most {MAX_RULES}",
            doc.locate(("weights", "rename")),
            ("weights", "rename"),
        )
        return
    for k, rule in enumerate(spec.weights.rename):
        try:
            parse_rename(rule.ours, rule.ref)
        except PatternError as exc:
            at: Path = ("weights", "rename", k)
            yield SpecError("AS437", f"rename rule: {exc}", doc.locate(at), at)


def check_init_rules(
    doc: Document, rules: Iterable[InitRule], registry: Registry, scope: set[str] | None, where: Path = ("init",)
) -> Iterable[SpecError]:
    """Static checks of init: rules (ops known, patterns and distributions valid, expressions over `scope`)."""
    rules = list(rules)
    if len(rules) > MAX_RULES:
        yield SpecError("AS438", f"{len(rules)} init rules; at most {MAX_RULES}", doc.locate(where), where)
        return
    for k, rule in enumerate(rules):
        path = (*where, k)
        if rule.op is None and rule.layer is None:
            yield SpecError(
                "AS438", "an init rule says which layers it applies to: op: and/or layer:", doc.locate(path), path
            )
        for op in rule.ops or []:
            if op not in registry.ops:
                yield SpecError(
                    "AS438",
                    f"init rule: unknown op {op!r}.{did_you_mean(op, registry.ops)}",
                    doc.locate((*path, "op")),
                    (*path, "op"),
                )
        if rule.layer is not None:
            problem = glob_problem(rule.layer)
            if problem:
                yield SpecError("AS438", f"init rule layer: {problem}", doc.locate((*path, "layer")), (*path, "layer"))
        if not rule.tensors:
            yield SpecError(
                "AS438", "an init rule names at least one tensor, e.g. weight: zeros", doc.locate(path), path
            )
        if scope is not None:
            yield from _check_value(doc, rule.if_, (*path, "if"), scope)
        for tensor, value in rule.tensors.items():
            parsed = init_data.split(value)
            if isinstance(parsed, str):
                yield SpecError("AS438", f"init {tensor}: {parsed}", doc.locate((*path, tensor)), (*path, tensor))
            elif scope is not None:
                name, args = parsed
                for arg, raw in args.items():
                    yield from _check_value(doc, raw, (*path, tensor, name, arg), scope)


SHAPE_NAMES = ("in_channels", "in_shape")


def _expressions(value: Any, path: Path) -> Iterable[tuple[str, Path]]:
    if isinstance(value, str):
        yield value, path
    elif isinstance(value, list):
        for k, item in enumerate(value):
            yield from _expressions(item, (*path, k))


class _Plus(Set[str]):
    """A scope and a few more names (a layer's repeat index), without copying the scope: a copy per layer
    made a spec with thousands of parameters and layers quadratic to validate."""

    def __init__(self, base: Set[str], extra: Set[str]):
        self.base, self.extra = base, extra

    def __contains__(self, name: object) -> bool:
        return name in self.extra or name in self.base

    def __iter__(self) -> Iterator[str]:
        return chain(self.base, (e for e in self.extra if e not in self.base))

    def __len__(self) -> int:
        return len(self.base) + sum(1 for e in self.extra if e not in self.base)


def _check_value(doc: Document, value: Any, path: Path, scope: Set[str]) -> Iterable[SpecError]:
    """Static checks of the expressions in `value`: syntax, allowed constructs, known names.
    Done here so that they are reported even where lowering never evaluates them."""
    names = scope
    for text, where in _expressions(value, path):
        if text.startswith("$$"):
            continue
        try:
            source = expression_source(text)
            if source is None:
                continue
            unknown = sorted(n for n in names_used(source) if n not in names)
        except ExprError as exc:
            yield SpecError(exc.code, exc.message, doc.locate(where), where)
            continue
        for name in unknown:
            yield SpecError(
                "AS303",
                f"unknown name {name!r} in {text!r}.{did_you_mean(name, chain(names, FUNCTIONS))}",
                doc.locate(where),
                where,
            )


def _check_expressions(doc: Document, spec: Spec) -> Iterable[SpecError]:
    scope = set(spec.params)
    for name, value in spec.vars.items():
        yield from _check_value(doc, value, ("vars", name), scope)
        scope.add(name)
    yield from _check_value(doc, *spec.input_shape, scope)
    for k, check in enumerate(spec.checks):
        yield from _check_value(doc, check.that, ("checks", k, "that"), scope)
    yield from _check_scope_expressions(doc, spec.layers, spec.blocks, scope)


def _check_scope_expressions(
    doc: Document, top: list[Layer], blocks: Mapping[str, Block], scope: set[str]
) -> Iterable[SpecError]:
    """The expressions of a file's layers and blocks; `scope` holds the names every block sees (a spec's
    parameters and vars; nothing for a library)."""
    scopes: list[tuple[Iterable[Layer], set[str]]] = [(top, scope)]
    for block_name, block in blocks.items():
        inner = scope | set(block.params) | set(SHAPE_NAMES)
        for name, value in block.vars.items():
            yield from _check_value(doc, value, ("blocks", block_name, "vars", name), inner)
            inner = inner | {name}
        for k, check in enumerate(block.checks):
            yield from _check_value(doc, check.that, ("blocks", block_name, "checks", k, "that"), inner)
        scopes.append((block.layers, inner))
    for layers, names in scopes:
        outer = names | set(SHAPE_NAMES)
        for layer in layers:
            yield from _check_value(doc, layer.if_, (*layer.where, "if"), outer)
            times = layer.repeat.times if isinstance(layer.repeat, Repeat) else layer.repeat
            yield from _check_value(doc, times, (*layer.where, "repeat"), outer)
            index = layer.repeat.index if isinstance(layer.repeat, Repeat) else "i"
            scoped = outer if layer.repeat is None else _Plus(outer, {index})
            for key, value in layer.args.items():
                yield from _check_value(doc, value, (*layer.where, key), scoped)
            yield from _check_value(doc, layer.trainable, (*layer.where, "trainable"), scoped)
            yield from _check_init_values(doc, layer.init, (*layer.where, "init"), scoped)


def _check_init_values(doc: Document, value: Any, path: Path, scope: Set[str]) -> Iterable[SpecError]:
    """The expressions in a layer's init: (mappings of tensors to rules to arguments)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _check_init_values(doc, item, (*path, key), scope)
    else:
        yield from _check_value(doc, value, path, scope)


def _check_block_inputs(doc: Document, blocks: Mapping[str, Block]) -> tuple[list[SpecError], list[SpecError]]:
    """A block's named inputs: valid names, none twice, none also a layer's name (the first list), each read
    by some layer (the second: an input nobody reads is the block-level form of AS434's unread layer, and
    often the trace of a mistyped from: that only lowering can name, so lowering may go on past it)."""
    errors: list[SpecError] = []
    unread: list[SpecError] = []
    for block_name, block in blocks.items():
        if block.inputs is None:
            continue
        layer_names = {layer.name: layer for layer in block.layers if layer.name is not None}
        read = {ref for layer in block.layers for ref in layer.inputs or ()}
        if block.layers[0].inputs is None:
            read.add(block.inputs[0])  # the first layer reads the first input implicitly
        if block.output is not None:
            read.add(block.output)
        read.update(block.outputs or ())
        seen: set[str] = set()
        for k, name in enumerate(block.inputs):
            at: Path = ("blocks", block_name, "inputs", k)
            problem = name_problem(name)
            if problem:
                errors.append(SpecError("AS409", f"block {block_name!r} input {name!r}: {problem}", doc.locate(at), at))
            elif name in seen:
                errors.append(
                    SpecError(
                        "AS441",
                        f"block {block_name!r} lists input {name!r} twice in inputs:; give each input its own name",
                        doc.locate(at),
                        at,
                    )
                )
            elif name in layer_names:
                where = (*layer_names[name].where, "name")
                errors.append(
                    SpecError(
                        "AS441",
                        f"layer {name!r} of block {block_name!r} has the name of one of the "
                        "block's inputs:, so from: could not tell them apart; rename the layer or the "
                        "input",
                        doc.locate(where),
                        where,
                    )
                )
            elif name not in read:
                unread.append(
                    SpecError(
                        "AS442",
                        f"block {block_name!r} declares input {name!r}, which none of its "
                        "layers reads; use it in a layer's from:, or remove it from inputs: (and from "
                        "the using layers' from:)",
                        doc.locate(at),
                        at,
                    )
                )
            seen.add(name)
    return errors, unread


def _check_block_cycles(doc: Document, blocks: Mapping[str, Block]) -> Iterable[SpecError]:
    uses = {name: {l.op for l in block.layers if l.op in blocks} for name, block in blocks.items()}

    def reaches(start: str) -> list[str] | None:
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        seen: set[str] = set()
        while stack:
            current, trail = stack.pop()
            for nxt in uses[current]:
                if nxt == start:
                    return [*trail, nxt]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
        return None

    for name in blocks:
        cycle = reaches(name)
        if cycle:
            path = ("blocks", name)
            yield SpecError(
                "AS406",
                f"block {name!r} uses itself ({' -> '.join(cycle)}); blocks cannot recurse, use repeat: instead",
                doc.locate_key(path),
                path,
            )


def _check_version(doc: Document, data: dict[str, Any]) -> list[SpecError]:
    version = data.get("archspec")
    if version == FORMAT_VERSION:
        return []
    return [
        SpecError(
            "AS207",
            f"archspec: {version!r} is not a format this tool reads; write archspec: {FORMAT_VERSION}",
            doc.locate(("archspec",) if "archspec" in data else ()),
            ("archspec",),
        )
    ]


def _typed(doc: Document, model: type[Model], errors: list[SpecError]) -> Any:
    """The document as `model`, with its paths remembered; SpecErrors with `errors` and pydantic's.
    Without `name:`, a thin spec is named after its variant, any other file after itself (resnet.yaml: resnet)."""
    data = doc.data
    if "name" not in data and (model is not SpecRef or "variant" not in data):
        data = {**data, "name": FsPath(doc.file).stem}  # _check_names says so if the stem cannot be a name
    try:
        typed = model.model_validate(data)
    except ValidationError as exc:
        errors.extend(e for e in _located(doc, exc, model) if e.path != ("archspec",) or not errors)
        raise SpecErrors(errors) from None
    _remember_paths(typed, ())
    return typed


def _check_blocks(doc: Document, blocks: Mapping[str, Block], registry: Registry) -> Iterable[SpecError]:
    """Parameter and variable names of a file's blocks, none named like an op, and no block using itself."""
    for block_name, block in blocks.items():
        yield from _check_param_decls(doc, block.params, ("blocks", block_name, "params"))
        yield from _check_var_names(doc, block.vars, ("blocks", block_name, "vars"))
        for name, where in [(block_name, ("blocks", block_name))] + [
            (alias, ("blocks", block_name, "presets", alias)) for alias in block.presets
        ]:
            if name in registry.ops:
                yield SpecError(
                    "AS203", f"block {name!r} has the name of an op; rename it", doc.locate_key(where), where
                )
    yield from _check_block_cycles(doc, blocks)


def _scope_of(
    doc: Document,
    source: str | None,
    blocks: Mapping[str, Block],
    imported: Mapping[str, BlockRef],
    errors: list[SpecError],
) -> dict[str, BlockRef]:
    """The blocks a file's layers may use: its imports' and its own. A name two files define is an error
    naming both (an own block may not quietly hide an imported one either)."""
    scope: dict[str, BlockRef] = dict(imported)  # every block of the file resolves names in this one table
    for name, block in blocks.items():
        if name in imported:
            at: Path = ("blocks", name)
            errors.append(
                SpecError(
                    "AS112",
                    f"block {name!r} is defined here and in {imported[name].source}, which "
                    "this file imports; rename this block",
                    doc.locate_key(at),
                    at,
                )
            )
        scope[name] = BlockRef(name, block, source, scope)
    for name, block in blocks.items():
        for alias, values in block.presets.items():
            at = ("blocks", name, "presets", alias)
            if alias in scope:
                errors.append(
                    SpecError(
                        "AS112",
                        f"preset {alias!r} of block {name!r} has the name of another block "
                        f"({scope[alias].source or 'this file'}); rename it",
                        doc.locate_key(at),
                        at,
                    )
                )
            for key in values:
                if key not in block.params:
                    errors.append(
                        SpecError(
                            "AS206",
                            f"preset {alias!r} sets {key!r}, which is not a parameter of block "
                            f"{name!r}.{did_you_mean(key, block.params)}",
                            doc.locate_key((*at, key)),
                            (*at, key),
                        )
                    )
            scope.setdefault(alias, BlockRef(alias, block, source, scope, values))
    return scope


@dataclass
class _Imports:
    """The block libraries read while resolving one spec: each file once, within docs/limits.md's bounds."""

    registry: Registry
    limits: Limits
    exports: dict[FsPath, dict[str, BlockRef]] = field(default_factory=dict)
    docs: dict[str, Document] = field(default_factory=dict)  # import_key -> document, for locating
    chain: list[FsPath] = field(default_factory=list)  # the files being imported now, outermost first

    def bring(self, doc: Document, entries: list[str]) -> dict[str, BlockRef]:
        """The blocks a file's `imports:` bring into its scope."""
        table: dict[str, BlockRef] = {}
        errors: list[SpecError] = []
        for k, entry in enumerate(entries):
            at: Path = ("imports", k)
            location = doc.locate(at)
            target = find_import(entry, doc.file, location, at)
            for name, ref in self.library(target, location, at).items():
                if name in table and table[name].source != ref.source:
                    errors.append(
                        SpecError(
                            "AS112",
                            f"block {name!r} is defined by both {table[name].source} and "
                            f"{ref.source}; import only one of them (or rename one)",
                            location,
                            at,
                        )
                    )
                table[name] = ref
        if errors:
            raise SpecErrors(errors)
        return table

    def library(self, target: FsPath, location: Location | None, at: Path) -> dict[str, BlockRef]:
        shown = display_path(target)

        def refuse(message: str) -> SpecErrors:
            return SpecErrors([SpecError("AS111", message, location, at)])

        if target in self.chain:
            trail = " -> ".join(display_path(p) for p in [*self.chain[self.chain.index(target) :], target])
            raise refuse(f"imports lead back to {shown} ({trail}); remove the cycle")
        if target in self.exports:
            return self.exports[target]
        if len(self.exports) >= self.limits.imports:
            raise refuse(f"more than {self.limits.imports} block libraries imported (raise --limit imports=N)")
        if len(self.chain) >= self.limits.import_depth:
            raise refuse(f"imports nest deeper than {self.limits.import_depth} files (raise --limit import_depth=N)")
        doc = load_file(relative_path(target), self.limits)
        if not isinstance(doc.data, dict):
            raise SpecErrors(
                [
                    SpecError(
                        "AS203",
                        "a block library is a mapping with keys archspec, name, description and blocks",
                        doc.locate(()),
                    )
                ]
            )
        errors = _check_version(doc, doc.data)
        library: Library = _typed(doc, Library, errors)
        self.chain.append(target)
        try:
            imported = self.bring(doc, library.imports)
        finally:
            self.chain.pop()
        errors.extend(_name_error(doc, library.name))
        errors.extend(_check_block_names(doc, [], library.blocks))
        errors.extend(_check_blocks(doc, library.blocks, self.registry))
        scope = _scope_of(doc, shown, library.blocks, imported, errors)
        errors.extend(_check_layers(doc, [], library.blocks, scope, self.registry))
        input_errors, unread = _check_block_inputs(doc, library.blocks)
        errors.extend(input_errors + unread)
        errors.extend(_check_scope_expressions(doc, [], library.blocks, set()))  # a library sees no spec's names
        if errors:
            raise SpecErrors(errors)
        # Lowering locates an imported layer through the importing spec's document: the paths of this
        # file's blocks start with its key from here on.
        key = import_key(doc.file)
        _remember_paths(library, (key,))
        self.docs[key] = doc
        self.exports[target] = {name: ref for name, ref in scope.items() if ref.source == shown}
        return self.exports[target]


def standard_blocks(registry: Registry, limits: Limits = DEFAULT) -> tuple[dict[str, BlockRef], dict[str, SpecErrors]]:
    """Every block of archspec's own libraries (`imports: [archspec:NAME]`), checked as an import would be;
    a name two of them define is listed under the first. A library that does not check here (an installed
    plugin's op clashing with one it uses) is returned apart with its errors, so the others stay usable."""
    imports = _Imports(registry, limits)
    found: dict[str, BlockRef] = {}
    broken: dict[str, SpecErrors] = {}
    for name in stdlib_libraries():
        target = find_import(STDLIB_PREFIX + name, "<archspec>", None, ())
        try:
            blocks = imports.library(target, None, ())
        except SpecErrors as exc:
            broken[STDLIB_PREFIX + name] = exc
            continue
        for block, ref in blocks.items():
            found.setdefault(block, ref)
    return found, broken


def validate_document(
    doc: Document, registry: Registry, deferred: list[SpecError] | None = None, imports: _Imports | None = None
) -> tuple[Spec | SpecRef, dict[str, BlockRef]]:
    """Check a loaded document's structure and names; raise SpecErrors with everything found. Returns the
    typed spec and, for a full spec, the blocks its layers may use (its own and those its imports bring).

    Errors in expressions do not stop lowering: with `deferred`, they are appended there instead,
    for the caller to report together with what lowering finds."""
    data = doc.data
    if not isinstance(data, dict):
        raise SpecErrors(
            [SpecError("AS203", "a spec file must be a mapping with keys archspec, name, layers, ...", doc.locate(()))]
        )
    errors = _check_version(doc, data)
    if "blocks" in data and "layers" not in data and "use" not in data:
        raise SpecErrors(
            [
                *errors,
                SpecError(
                    "AS203",
                    "this file has blocks: but no layers:, so it is a block library, not a network: a spec brings its "
                    f"blocks in with imports: [{os.path.basename(doc.file)}] (a path relative to that spec); a network needs "
                    "input: and layers:",
                    doc.locate(()),
                ),
            ]
        )
    model: type[Spec] | type[SpecRef] = SpecRef if "use" in data else Spec
    spec: Spec | SpecRef = _typed(doc, model, errors)
    errors.extend(_check_names(doc, spec))
    table: dict[str, BlockRef] = {}
    if isinstance(spec, SpecRef):
        errors.extend(check_init_rules(doc, spec.init, registry, None))
    if isinstance(spec, Spec):
        imports = imports or _Imports(registry, DEFAULT)
        table = _scope_of(doc, None, spec.blocks, imports.bring(doc, spec.imports), errors)
        errors.extend(_check_param_decls(doc, spec.params, ("params",)))
        errors.extend(_check_var_names(doc, spec.vars, ("vars",)))
        errors.extend(_check_blocks(doc, spec.blocks, registry))
        errors.extend(_check_layers(doc, spec.layers, spec.blocks, table, registry))
        input_errors, unread = _check_block_inputs(doc, spec.blocks)
        errors.extend(input_errors)
        errors.extend(_check_weights(doc, spec))
        errors.extend(check_init_rules(doc, spec.init, registry, set(spec.params) | set(spec.vars)))
        if not errors and deferred is not None:
            # Lowering can go on past these, and find shape errors (or the from: that left an input
            # unread) to report with them.
            deferred.extend(unread)
            deferred.extend(_check_expressions(doc, spec))
        else:
            errors.extend(unread)
            errors.extend(_check_expressions(doc, spec))
        for variant, values in spec.variants.items():
            for key in values:
                if key not in spec.params:
                    where = ("variants", variant, key)
                    errors.append(
                        SpecError(
                            "AS206",
                            f"variant {variant!r} sets unknown parameter {key!r}.{did_you_mean(key, spec.params)}",
                            doc.locate_key(where),
                            where,
                        )
                    )
    if errors:
        raise SpecErrors(errors)
    return spec, table


# -- following use: -----------------------------------------------------------------------------
def _referenced_file(doc: Document, ref: SpecRef, root: FsPath) -> FsPath:
    location = doc.locate(("use",))
    if "\0" in ref.use or len(ref.use) > 1024:
        raise SpecErrors(
            [
                SpecError(
                    "AS110", "use: must be a relative path of at most 1024 characters without NUL", location, ("use",)
                )
            ]
        )
    if os.path.isabs(ref.use) or ref.use.startswith("~"):
        raise SpecErrors(
            [
                SpecError(
                    "AS110", f"use: {ref.use!r} is absolute; give a path relative to {doc.file}", location, ("use",)
                )
            ]
        )
    target = (FsPath(doc.file).parent / ref.use).resolve()
    if not target.is_relative_to(root):
        raise SpecErrors(
            [
                SpecError(
                    "AS110",
                    f"use: {ref.use!r} leaves the spec's folder {root}; keep family specs beside or below it",
                    location,
                    ("use",),
                )
            ]
        )
    return target


def _variant_settings(
    family: Spec, family_doc: Document, variant: str, location: Location | None, path: Path
) -> dict[str, Setting]:
    if variant not in family.variants:
        raise SpecErrors(
            [
                SpecError(
                    "AS205",
                    f"{family_doc.file} has no variant {variant!r}.{did_you_mean(variant, family.variants)}"
                    f" Variants: {one_of(list(family.variants)) or 'none'}.",
                    location,
                    path,
                )
            ]
        )
    return {
        key: Setting(value, family_doc.locate(("variants", variant, key)))
        for key, value in family.variants[variant].items()
    }


def _follow_use(
    ref: SpecRef, ref_doc: Document, registry: Registry, deferred: list[SpecError], imports: _Imports
) -> tuple[Spec, Document, dict[str, BlockRef]]:
    """The full spec a thin spec's `use:` chain ends at, with its document."""
    root = FsPath(ref_doc.file).resolve().parent
    seen = {FsPath(ref_doc.file).resolve()}
    current, current_doc = ref, ref_doc
    limits = imports.limits
    for _ in range(limits.use_depth):
        target = _referenced_file(current_doc, current, root)
        if target in seen:
            raise SpecErrors(
                [
                    SpecError(
                        "AS110",
                        f"use: {current.use!r} leads back to {target.name}; remove the cycle",
                        current_doc.locate(("use",)),
                        ("use",),
                    )
                ]
            )
        seen.add(target)
        loaded_doc = load_file(relative_path(target), limits)
        loaded, table = validate_document(loaded_doc, registry, deferred, imports)
        if isinstance(loaded, Spec):
            return loaded, loaded_doc, table
        current, current_doc = loaded, loaded_doc
    raise SpecErrors(
        [
            SpecError(
                "AS110",
                f"use: chains deeper than {limits.use_depth} files (raise --limit use_depth=N)",
                ref_doc.locate(("use",)),
                ("use",),
            )
        ]
    )


def resolve_file(
    path: str | os.PathLike[str], registry: Registry, variant: str | None = None, limits: Limits = DEFAULT
) -> Resolved:
    """Load, validate and resolve a spec file. `variant` picks a row of the family's table instead of
    the one a thin spec names; the result then states no expected figures (they are the thin spec's)."""
    # At most `limits.errors` errors are shown: suggestions for a few more than that keep the output as
    # useful, and bound a flood of unknown names among many declared ones (quadratic otherwise).
    with suggestion_budget(2 * limits.errors):
        return _resolve_file(path, registry, variant, limits)


def _resolve_file(path: str | os.PathLike[str], registry: Registry, variant: str | None, limits: Limits) -> Resolved:
    doc = load_file(path, limits)
    deferred: list[SpecError] = []
    imports = _Imports(registry, limits)
    spec, blocks = validate_document(doc, registry, deferred, imports)
    if isinstance(spec, Spec):
        doc = replace(doc, imported=imports.docs)
        if variant is None:
            return Resolved(spec, doc, spec.name, expect_doc=doc, deferred=tuple(deferred), blocks=blocks)
        settings = _variant_settings(spec, doc, variant, COMMAND_LINE, ())
        return Resolved(spec, doc, variant, variant, settings, deferred=tuple(deferred), blocks=blocks)
    ref, ref_doc = spec, doc
    family, family_doc, blocks = _follow_use(ref, ref_doc, registry, deferred, imports)
    family_doc = replace(family_doc, imported=imports.docs)
    settings = {}
    chosen = variant if variant is not None else ref.variant
    if chosen is not None:
        location = COMMAND_LINE if variant is not None else ref_doc.locate(("variant",))
        settings = _variant_settings(family, family_doc, chosen, location, ("variant",))
    unknown = [k for k in ref.set if k not in family.params]
    if unknown:
        raise SpecErrors(
            [
                SpecError(
                    "AS206",
                    f"set: names unknown parameter {k!r}.{did_you_mean(k, family.params)}",
                    ref_doc.locate_key(("set", k)),
                    ("set", k),
                )
                for k in unknown
            ]
        )
    for key, value in ref.set.items():
        settings[key] = Setting(value, ref_doc.locate(("set", key)))
    if chosen != ref.variant:  # another network than the one the thin spec's expect: describes
        return Resolved(
            family,
            family_doc,
            chosen or ref.name,
            chosen,
            settings,
            deferred=tuple(deferred),
            thin_init=tuple(ref.init),
            thin_doc=ref_doc,
            blocks=blocks,
        )
    return Resolved(
        family,
        family_doc,
        ref.name,
        ref.variant,
        settings,
        expect_doc=ref_doc,
        ref=ref,
        deferred=tuple(deferred),
        thin_init=tuple(ref.init),
        thin_doc=ref_doc,
        blocks=blocks,
    )
