"""The spec format as JSON Schema, for editors (`archspec schema > archspec.schema.json`).

Beyond the pydantic models of the format, each registered op contributes its argument schema (from its
parameter model): a layer whose `op:` names that op may use exactly those arguments besides op, name,
from, repeat and if (an `if`/`then` per op), so an editor completes them and flags a misspelt one. Any
argument may also be an expression (a string starting with `$`). A layer whose op is a block of the spec
takes the block's parameters, which the schema cannot know: its keys are left open.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from archspec.registry import Registry
from archspec.spec import LAYER_KEYS, Library, Spec, SpecRef

EXPRESSION = {"type": "string", "pattern": "^\\$", "description": "an expression: $name or ${...}"}
DOC_KEYS = ("title", "description", "default")


def json_schema(registry: Registry) -> dict[str, Any]:
    schema = TypeAdapter(Spec | SpecRef | Library).json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "archspec spec or block library (format 1)"
    _param_shorthand(schema)
    # name: may be left out: a thin spec is then named after its variant, any other file after itself.
    for model in ("Spec", "SpecRef", "Library"):
        schema["$defs"][model]["required"] = [k for k in schema["$defs"][model]["required"] if k != "name"]
    layer = schema["$defs"]["Layer"]
    # In YAML a layer's op arguments sit beside op/name/from/repeat/if, not under `args`.
    layer["properties"].pop("args", None)
    layer["additionalProperties"] = True
    # `name: 0`: YAML reads an int, which names a layer like a reference's numbered child (spec.Layer).
    layer["properties"]["name"] = {
        "anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0}, {"type": "null"}],
        "description": "The layer's name: an identifier, an index, or a dotted path of them.",
    }
    rule = schema["$defs"]["InitRule"]
    # An init: rule's tensors (weight: ..., bias: ...) sit beside op/layer/if, not under `tensors`.
    rule["properties"].pop("tensors", None)
    rule["additionalProperties"] = True
    ops = registry.op_names()
    op = layer["properties"]["op"]
    op["description"] = "An op (" + ", ".join(ops) + ") or the name of a block of this spec or of its imports."
    op.pop("type", None)
    op["anyOf"] = [{"enum": ops}, {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]*$"}]
    layer["allOf"] = [_op_arguments(name, registry, schema["$defs"]) for name in ops]
    return schema


def _param_shorthand(schema: dict[str, Any]) -> None:
    """A parameter is declared `name: default` (any value but a mapping) or as a mapping whose `type` may be
    left to its default (ParamDecl's before-validator fills both in)."""
    defs = schema["$defs"]
    decl = defs["ParamDecl"]
    decl["required"] = [k for k in decl.get("required", []) if k != "type"] or None
    if decl["required"] is None:
        del decl["required"]
    defs["ParamValue"] = {
        "anyOf": [{"$ref": "#/$defs/ParamDecl"}, {"not": {"type": "object"}}],
        "description": "a parameter: its default value, or {type, default, doc, choices, min, max}",
    }
    for model in defs.values():
        params = model.get("properties", {}).get("params")
        if isinstance(params, dict) and params.get("additionalProperties") == {"$ref": "#/$defs/ParamDecl"}:
            params["additionalProperties"] = {"$ref": "#/$defs/ParamValue"}


def _op_arguments(name: str, registry: Registry, defs: dict[str, Any]) -> dict[str, Any]:
    """`if op is NAME then only NAME's arguments (each a value of its type or an expression)`."""
    opdef = registry.op(name)
    params = opdef.params.model_json_schema(by_alias=True)
    for key, value in params.pop("$defs", {}).items():  # nested models: their refs point at the root's $defs
        defs.setdefault(key, value)
    properties: dict[str, Any] = {key: {} for key in LAYER_KEYS}
    properties["op"] = {"const": name, "description": opdef.doc}
    for key, arg in params.get("properties", {}).items():
        relaxed: dict[str, Any] = {k: arg[k] for k in DOC_KEYS if k in arg}
        relaxed["anyOf"] = [_allow_expressions({k: v for k, v in arg.items() if k not in DOC_KEYS}), EXPRESSION]
        properties[key] = relaxed
    then: dict[str, Any] = {"properties": properties, "additionalProperties": False}
    if params.get("required"):
        then["required"] = list(params["required"])
    return {"if": {"properties": {"op": {"const": name}}, "required": ["op"]}, "then": then}


def _allow_expressions(schema: Any) -> Any:
    """The schema with every element of a list also allowed to be an expression (`kernel: [$k, 1]`)."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if "anyOf" in out:
        out["anyOf"] = [_allow_expressions(s) for s in out["anyOf"]]
    if isinstance(out.get("items"), dict):
        out["items"] = {"anyOf": [_allow_expressions(out["items"]), EXPRESSION]}
    if isinstance(out.get("prefixItems"), list):
        out["prefixItems"] = [{"anyOf": [_allow_expressions(s), EXPRESSION]} for s in out["prefixItems"]]
    return out
