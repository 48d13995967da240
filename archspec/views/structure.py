"""What the dotted layer names say about structure.

Lowering names every node by its path: blocks add a segment (`layer1.0.downsample.conv`), repeats add
the copy index (`layer1.0`). So the IR needs no extra metadata for views to rebuild the nesting:

    group    a path prefix shared by several nodes: a block application, a repeat, one copy of a repeat
    repeat   a group whose children are numbered copies made by one `repeat:` (`layer1` -> `layer1.0`,
             `layer1.1`, ...); not every numbered group is one (see Group.is_repeat)
    level    how deep a group nests, counting named segments only: `layer1` and its copy `layer1.0` are
             level 1, `layer1.0.downsample` is level 2
    stage    the coarse unit of per-stage tables and charts (see `stage_of`)
"""

from __future__ import annotations

from dataclasses import dataclass, field
import re

from archspec.ir import Graph, Node


def segments(name: str) -> list[str]:
    return name.split(".")


def level(path: str) -> int:
    return sum(1 for part in segments(path) if not part.isdigit())


def stage_of(name: str) -> str:
    """A layer's stage: its repeat group (`layer1`, `encoder.layers`, `features.denseblock1`); where copies
    hold repeats of their own (EfficientNet's `stages.1.blocks.0`), the outer copy (`stages.1`); a layer
    outside any repeat belongs to its top-level block or is a stage of its own (`conv1`, `classifier`)."""
    parts = segments(name)
    # A number at the end names a layer (`downsample.0`, a reference's numbered child), not a copy.
    numbered = [k for k, part in enumerate(parts[:-1]) if part.isdigit()]
    if not numbered:
        return parts[0]
    first = numbered[0]
    if len(numbered) > 1:
        return ".".join(parts[: first + 1])
    return ".".join(parts[:first])


def is_auto_name(local: str, op: str) -> bool:
    """Whether a name is spelled the way lowering names unnamed layers (`relu`, `relu_2`), so that views
    may align or hash it by its op rather than by its spelling."""
    return re.fullmatch(re.escape(op) + r"(_[0-9]+)?", local) is not None


@dataclass
class Group:
    """A path prefix and what sits directly under it, in graph order: nodes and subgroups."""

    path: str
    children: list[Group | Node] = field(default_factory=list)

    @property
    def local(self) -> str:
        return segments(self.path)[-1] if self.path else ""

    @property
    def is_repeat(self) -> bool:
        """Whether the children are copies made by one `repeat:`. Numbered children alone do not say so:
        a reference's Sequential (`features.0` ... `features.7`, an MLP's `mlp.0` ... `mlp.4`) is numbered
        too, but each child is a different layer of the spec. Copies are made by the same written layer, so
        some spec location made a node in every copy; a numbered container's children share none. (Two or
        more written layers that apply one block share its locations and pass for copies: the IR keeps no
        trace of the layer that applied a block.) A graph built without locations falls back to numbering."""
        if len(self.children) < 2 or not all(_local(c).isdigit() for c in self.children):
            return False  # one copy is drawn as what it is: "×1" says nothing
        made = [{n.source for n in (c.nodes() if isinstance(c, Group) else [c])} for c in self.children]
        if all(found == {None} for found in made):
            return True
        return bool(set.intersection(*made) - {None})

    def nodes(self) -> list[Node]:
        found: list[Node] = []
        for child in self.children:
            found.extend(child.nodes() if isinstance(child, Group) else [child])
        return found


def _local(item: Group | Node) -> str:
    return item.local if isinstance(item, Group) else segments(item.name)[-1]


def tree(graph: Graph) -> Group:
    """The nesting of the graph's nodes by their dotted names; children keep graph order."""
    root = Group("")
    groups: dict[str, Group] = {"": root}
    for node in graph:
        parts = segments(node.name)
        parent = root
        for k in range(1, len(parts)):
            path = ".".join(parts[:k])
            group = groups.get(path)
            if group is None:
                group = groups[path] = Group(path)
                parent.children.append(group)
            parent = group
        parent.children.append(node)
    return root
