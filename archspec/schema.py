"""The spec format as JSON Schema, for editors (`archspec schema > archspec.schema.json`)."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from archspec.registry import Registry
from archspec.spec import Spec, SpecRef


def json_schema(registry: Registry) -> dict[str, Any]:
    schema = TypeAdapter(Spec | SpecRef).json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "archspec spec (format 1)"
    layer = schema["$defs"]["Layer"]
    # In YAML a layer's op arguments sit beside op/name/from/repeat/if, not under `args`.
    layer["properties"].pop("args", None)
    layer["additionalProperties"] = True
    rule = schema["$defs"]["InitRule"]
    # An init: rule's tensors (weight: ..., bias: ...) sit beside op/layer/if, not under `tensors`.
    rule["properties"].pop("tensors", None)
    rule["additionalProperties"] = True
    ops = registry.op_names()
    layer["properties"]["op"]["description"] = "An op (" + ", ".join(ops) + ") or the name of a block of this spec."
    return schema
