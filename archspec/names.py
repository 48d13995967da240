"""What a name in a spec may be: one rule, checked once in validation, for every backend at once.

Names of the spec, its variants, blocks and layers become file names (`archspec build` writes
`<name>.pt2`), Python identifiers and module attribute paths (`layer1.0.conv1`) in every backend. So a
name is a short ASCII identifier: letters, digits and `_`, starting with a letter. That rules out path
separators, dots, NUL, control and bidi characters and look-alike letters in one stroke.

A layer name may also be a dotted path of such names and indices (`downsample.0`), like the module
paths of a reference implementation, so that checkpoints pair by name (see `layer_name_problem`).

A layer or block name is also an attribute of the built `torch.nn.Module` (or `torch.fx.GraphModule`, or the
nn.ModuleDict that holds repeated layers), so it must not shadow one of theirs (`training`, `graph`, `code`,
`forward`, `keys`, ...). The set is written
out here because the core never imports torch; `tests/test_names.py` checks it against the installed
torch.
"""

from __future__ import annotations

import keyword
import re

MAX_NAME_CHARS = 100

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_PARAM = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

# Public attributes of torch.nn.Module and torch.fx.GraphModule (class and instance), torch 2.14.
MODULE_ATTRIBUTES = frozenset(
    {
        "T_destination",
        "add_module",
        "add_submodule",
        "apply",
        "bfloat16",
        "buffers",
        "call_super_init",
        "children",
        "code",
        "compile",
        "cpu",
        "cuda",
        "delete_all_unused_submodules",
        "delete_submodule",
        "double",
        "dump_patches",
        "eval",
        "extra_repr",
        "float",
        "forward",
        "get_buffer",
        "get_extra_state",
        "get_parameter",
        "get_submodule",
        "graph",
        "half",
        "ipu",
        "load_state_dict",
        "meta",
        "modules",
        "mtia",
        "named_buffers",
        "named_children",
        "named_modules",
        "named_parameters",
        "parameters",
        "print_readable",
        "recompile",
        "register_backward_hook",
        "register_buffer",
        "register_forward_hook",
        "register_forward_pre_hook",
        "register_full_backward_hook",
        "register_full_backward_pre_hook",
        "register_load_state_dict_post_hook",
        "register_load_state_dict_pre_hook",
        "register_module",
        "register_parameter",
        "register_state_dict_post_hook",
        "register_state_dict_pre_hook",
        "requires_grad_",
        "set_extra_state",
        "set_submodule",
        "shape_env",
        "share_memory",
        "state_dict",
        "to",
        "to_empty",
        "to_folder",
        "train",
        "training",
        "type",
        "xpu",
        "zero_grad",
        "self",  # the generated forward's own first argument
        # Methods of the containers a backend may hold repeated layers in (nn.ModuleDict, nn.Sequential,
        # nn.ModuleList): a child of that name cannot be added beside `blk.0` (torch-source's ModuleDict).
        "append",
        "clear",
        "extend",
        "insert",
        "items",
        "keys",
        "pop",
        "update",
        "values",
    }
)

RULE = "letters, digits and _, starting with a letter (ASCII), at most 100 characters"


def name_problem(name: object, *, module_attribute: bool = False) -> str | None:
    """Why `name` cannot name a spec, variant, block or layer (None when it can).

    `module_attribute`: the name becomes an attribute of the built module (layers and blocks)."""
    if not isinstance(name, str):
        return f"a name must be a string, not {type(name).__name__}"
    if not name:
        return "a name cannot be empty"
    if len(name) > MAX_NAME_CHARS:
        return f"a name may have at most {MAX_NAME_CHARS} characters, this one has {len(name)}"
    if not _NAME.fullmatch(name):
        return f"use {RULE}"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return f"{name!r} is a Python keyword"
    if module_attribute and name in MODULE_ATTRIBUTES:
        return f"{name!r} is an attribute of the built torch module; choose another name (e.g. {name}_)"
    return None


_INDEX = re.compile(r"0|[1-9][0-9]*")


def layer_name_problem(name: object, *, top_level: bool = False) -> str | None:
    """Why `name` cannot name a layer (None when it can).

    A layer name may be a module path like the reference's: dotted parts, each an identifier (the rule of
    `name_problem`, not a module attribute) or an index (`0`, `12`), e.g. `downsample.0` or `features.3`,
    so that its parameters carry the reference checkpoint's names. A top-level layer's path cannot start
    with an index: the built module's own attributes are identifiers."""
    if not isinstance(name, str):
        return f"a name must be a string, not {type(name).__name__}"
    if len(name) > MAX_NAME_CHARS:
        return f"a name may have at most {MAX_NAME_CHARS} characters, this one has {len(name)}"
    parts = name.split(".")
    for k, part in enumerate(parts):
        if _INDEX.fullmatch(part):
            if k == 0 and top_level:
                return f"a top-level layer's name cannot start with an index ({part!r}); put it inside a named layer"
            continue
        if part.isdigit():
            return f"index {part!r}: write indices without leading zeros"
        problem = name_problem(part, module_attribute=True)
        if problem:
            return problem if len(parts) == 1 else f"part {part!r} of {name!r}: {problem}"
    return None


def param_problem(name: str) -> str | None:
    """Why `name` cannot name a parameter, variable or repeat index (None when it can)."""
    if not _PARAM.fullmatch(name) or len(name) > MAX_NAME_CHARS:
        return f"use {RULE}"
    if keyword.iskeyword(name):
        return f"{name!r} is a Python keyword"
    return None
