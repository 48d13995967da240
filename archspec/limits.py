"""The bounds on the work a spec can ask for, in one place.

Specs come from strangers, so every stage bounds both what it makes (nodes, tensors, parameters) and
the work it does to get there (layer visits and expression evaluations, errors reported). The defaults
let every spec of the zoo through with a wide margin and keep the worst input of `file_bytes` under a
second or so of validate + summary on a laptop core. A user with a genuinely larger network raises a
limit with `--limit NAME=VALUE` on the command line or `Limits(...)` from Python; docs/limits.md lists
each one.

The expression evaluator's own bounds (source length, parts, integer size, list length) are fixed
constants in `archspec.expr`: they bound one expression, which no real spec comes near.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

GIB = 1024**3


@dataclass(frozen=True)
class Limits:
    file_bytes: int = 1_000_000  # size of one spec file
    depth: int = 64  # nested YAML mappings/lists, the root included
    use_depth: int = 8  # thin specs chained through use:
    imports: int = 64  # block library files one spec imports, directly or through other libraries
    import_depth: int = 8  # libraries importing libraries
    repeat: int = 10_000  # copies one repeat: may make
    nodes: int = 20_000  # op nodes in the expanded graph (docs/limits.md: the largest zoo network's count)
    work: int = 100_000  # layer visits + expression evaluations while lowering (docs/limits.md: what the zoo needs) ...
    work_base: int = 20_000  # ... and at most work_base + work_per_char * (characters of the spec): a short
    work_per_char: int = 10  # spec cannot ask for more than a fraction of a second of compute
    inputs: int = 1_024  # inputs of one layer (from:)
    errors: int = 100  # errors reported in one run; the rest are counted, not listed
    tensor_elements: int = 2**31  # elements of one tensor of one sample
    params: int = 2_000_000_000  # trainable parameters of a network that is built
    memory_bytes: int = 8 * GIB  # parameters + activations of the traced batch, checked before building

    def work_for(self, characters: int) -> int:
        """The work budget of a spec of `characters` characters."""
        return min(self.work, self.work_base + self.work_per_char * characters)

    def raised(self, **changes: int) -> Limits:
        return replace(self, **changes)

    @staticmethod
    def names() -> list[str]:
        return [f.name for f in fields(Limits)]


DEFAULT = Limits()


@dataclass(frozen=True)
class DataLimits:
    """What one training dataset may hold (`archspec train/eval --data`), checked before anything of that size
    is allocated: from a file's size or a header's declared counts, never after reading. Data files come from
    strangers as specs do; each default lets the real datasets through (ImageNet-21k's 14 million images and
    21,841 classes, an 8K photo) and keeps one decoded image, one pickle and one listing in memory bounds."""

    image_bytes: int = 256 * 2**20  # one image file
    image_pixels: int = 2**25  # width * height of one image, from its header (33.5 million: 8K UHD fits)
    images: int = 20_000_000  # image files listed in one split of an image folder
    classes: int = 100_000  # class folders of an image folder
    confusion_classes: int = 1_024  # the most classes `eval` builds a confusion matrix for (ImageNet's 1,000 fit)
    pickle_bytes: int = 256 * 2**20  # one CIFAR pickle (CIFAR-100's train file is 155 MB) and every array in it
    idx_bytes: int = 2 * GIB  # one idx file, decompressed (MNIST's largest is 47 MB, EMNIST's 550 MB)


DATA = DataLimits()


def parse_limit(text: str) -> tuple[str, int]:
    """`name=value` (value a whole number, `_` and k/M/G suffixes allowed) -> (name, value); ValueError says why."""
    name, sep, raw = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or name not in Limits.names():
        raise ValueError(f"--limit {text!r}: write NAME=VALUE with NAME one of {', '.join(Limits.names())}")
    raw = raw.strip().replace("_", "")
    scale = {"k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    factor = 1
    for suffix in sorted(scale, key=len, reverse=True):
        if raw.endswith(suffix):
            raw, factor = raw[: -len(suffix)], scale[suffix]
            break
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise ValueError(f"--limit {text!r}: the value must be a whole number such as 100000, 2G or 16Gi")
    value = int(raw) * factor
    if value < 1:
        raise ValueError(f"--limit {text!r}: the value must be at least 1")
    return name, value
