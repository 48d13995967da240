"""The IR drawn with Graphviz: DOT text here, pictures from the system's `dot` program.

Blocks are nested clusters. Groups nested deeper than `depth` (see structure.level) are drawn as one box
each, a repeat as one "×N" box. Within a drawn repeat, a run of copies built like the copy before them
(same ops, arguments and wiring; shapes may differ, as in a DenseNet block) collapses to one box after
that first copy is drawn, so a 32-layer encoder is one drawn layer and a "×31" box. Every node shows its
name, op, output shape and parameters; edges follow the IR, so branches and merges (Inception modules,
residual adds, dense concatenations) show as drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
import html
import json
import shutil
from typing import Any

from archspec.errors import ArchspecError
from archspec.ir import Graph, Node
from archspec.lower import fmt_shape
from archspec.passes.counts import Costs
from archspec.registry import Registry
from archspec.report import human
from archspec.views.structure import Group, level, segments, tree

FORMATS = ("svg", "png", "pdf", "dot", "html")
# Pictures are drawn at the layout's own size, never fitted to a page: a long or wide graph gets a long or wide
# picture whose 10 pt labels stay readable (no `size` attribute, which would shrink it). A PNG has pixels, not
# points: it is drawn at PNG_DPI, and only where that would pass cairo's largest bitmap side at fewer dpi, just
# enough to fit (what dot itself would do, with a warning on stderr). SVG and PDF have no such limit.
PNG_DPI = 144  # two pixels a point: 10 pt labels are 20 px high
BITMAP_SIDE = 32767  # cairo's largest image side, in pixels
DEFAULT_DEPTH = 2
INSTALL_DOT = "install Graphviz: apt-get install graphviz (Debian/Ubuntu), brew install graphviz (macOS)"
COLORS = {
    "conv": "#cfe2ff",
    "dense": "#d7c8f5",
    "norm": "#fff3bf",
    "activation": "#d3f9d8",
    "pool": "#c5f6fa",
    "merge": "#ffd8a8",
    "regularization": "#eeeeee",
    "tensor": "#f1f3f5",
    "input": "#ffffff",
    "box": "#e9ecef",
}


def _graphviz() -> Any:
    try:
        import graphviz
    except ImportError:
        raise ArchspecError(
            "AS934", "pictures need the graphviz Python package: pip install 'archspec[views]'"
        ) from None
    return graphviz


@dataclass
class _Drawing:
    graph: Graph
    params: dict[str, int]
    registry: Registry | None
    depth: int
    collapse: bool
    ids: dict[str, str]  # IR node -> the drawn node or box that stands for it
    drawn: int = 0

    def node_id(self) -> str:
        self.drawn += 1
        return f"n{self.drawn}"

    def category(self, op: str) -> str:
        if op == "input":
            return "input"
        return self.registry.op(op).category if self.registry is not None and op in self.registry.ops else ""

    def draw_node(self, dot: Any, node: Node, label_name: str) -> None:
        nid = self.node_id()
        self.ids[node.name] = nid
        count = self.params.get(node.name, 0)
        lines = [node.op] if label_name == node.op else [label_name, node.op]  # an auto-named layer: its op once
        lines += [fmt_shape(node.shape or ())] + ([f"params {human(count)}"] if count else [])
        dot.node(nid, "\\n".join(lines), tooltip=node.name, fillcolor=COLORS.get(self.category(node.op), "#ffffff"))

    def draw_box(self, dot: Any, title: str, detail: str, nodes: list[Node], tooltip: str) -> None:
        nid = self.node_id()
        for node in nodes:
            self.ids[node.name] = nid
        count = sum(self.params.get(n.name, 0) for n in nodes)
        last = nodes[-1].shape or ()
        lines = [title, detail, fmt_shape(last)] + ([f"params {human(count)}"] if count else [])
        dot.node(nid, "\\n".join(lines), tooltip=tooltip, shape="box3d", style="filled", fillcolor=COLORS["box"])

    def draw_group(self, dot: Any, group: Group) -> None:
        if level(group.path) > self.depth:
            nodes = group.nodes()
            if group.is_repeat:
                self.draw_box(
                    dot,
                    f"{_short(group.path)} ×{len(group.children)}",
                    f"repeat · {len(nodes)} layers",
                    nodes,
                    group.path,
                )
            else:
                self.draw_box(dot, _short(group.path), f"block · {len(nodes)} layers", nodes, group.path)
            return
        with dot.subgraph(name=f"cluster_{group.path}") as cluster:
            label = f"{_short(group.path)} ×{len(group.children)}" if group.is_repeat else _short(group.path)
            cluster.attr(label=label, tooltip=group.path, style="rounded", color="#868e96", fontcolor="#495057")
            self.draw_children(cluster, group)

    def draw_item(self, dot: Any, item: Group | Node) -> None:
        if isinstance(item, Group):
            self.draw_group(dot, item)
        else:
            parts = segments(item.name)
            self.draw_node(dot, item, ".".join(parts[-2:]) if parts[-1].isdigit() and len(parts) > 1 else parts[-1])

    def draw_children(self, dot: Any, group: Group) -> None:
        if not (self.collapse and group.is_repeat):
            for child in group.children:
                self.draw_item(dot, child)
            return
        shown: Group | Node | None = None  # the copy drawn last; a run of copies built like it follows
        shown_signature: tuple[Any, ...] = ()
        run: list[Group | Node] = []
        for child in group.children:
            signature = _signature(child)
            if shown is not None and signature == shown_signature:
                run.append(child)
                continue
            self._flush(dot, shown, run)
            self.draw_item(dot, child)
            shown, shown_signature, run = child, signature, []
        self._flush(dot, shown, run)

    def _flush(self, dot: Any, shown: Group | Node | None, run: list[Group | Node]) -> None:
        if not run or shown is None:
            return
        first, last = _path(run[0]), _path(run[-1])
        span = _short(first) if len(run) == 1 else f"{_short(first)}–{segments(last)[-1]}"
        nodes = [n for item in run for n in (item.nodes() if isinstance(item, Group) else [item])]
        self.draw_box(dot, f"{span} ×{len(run)}", f"built like {_short(_path(shown))}", nodes, f"{first} ... {last}")


def _path(item: Group | Node) -> str:
    return item.path if isinstance(item, Group) else item.name


def _short(path: str) -> str:
    """The last named segment with the copy index after it: `layer1.0` -> `layer1.0`, `a.b.mlp` -> `mlp`."""
    parts = segments(path)
    keep = 1
    while keep < len(parts) and parts[-keep].isdigit():
        keep += 1
    return ".".join(parts[-keep:])


def _signature(item: Group | Node) -> tuple[Any, ...]:
    """What must match for copies to be "built alike": ops, arguments and wiring, by names relative to the copy."""
    prefix = (item.path + ".") if isinstance(item, Group) else ""
    nodes = item.nodes() if isinstance(item, Group) else [item]
    inside = {n.name for n in nodes}

    def rel(name: str) -> str:
        return name[len(prefix) :] if name in inside else "<outside>"

    return tuple(
        (
            rel(n.name) if prefix else "",
            n.op,
            json.dumps(n.params.model_dump(mode="json") if n.params else None, sort_keys=True),
            tuple(rel(s) for s in n.inputs),
        )
        for n in nodes
    )


def to_dot(
    graph: Graph, costs: Costs, registry: Registry | None = None, depth: int = DEFAULT_DEPTH, collapse: bool = True
) -> Any:
    """The graph as a graphviz.Digraph (its `.source` is the DOT text; rendering needs `dot`)."""
    graphviz = _graphviz()
    dot = graphviz.Digraph(
        graph.name,
        graph_attr={
            "rankdir": "TB",
            "ranksep": "0.3",
            "nodesep": "0.25",
            "fontname": "Helvetica",
            "fontsize": "11",
            "label": graph.name,
            "labelloc": "t",
        },
        node_attr={
            "shape": "box",
            "style": "rounded,filled",
            "fontname": "Helvetica",
            "fontsize": "10",
            "margin": "0.08,0.03",
            "height": "0.3",
        },
        edge_attr={"arrowsize": "0.6", "color": "#495057"},
    )
    drawing = _Drawing(graph, {l.name: l.params for l in costs.layers}, registry, depth, collapse, {})
    drawing.draw_children(dot, tree(graph))
    edges: dict[tuple[str, str], None] = {}
    for node in graph.ops:
        for src in node.inputs:
            tail, head = drawing.ids[src], drawing.ids[node.name]
            if tail != head:
                edges[(tail, head)] = None
    dot.edges(list(edges))
    return dot


def format_of(output: str) -> str:
    suffix = output.rsplit(".", 1)[-1].lower() if "." in output else ""
    if suffix not in FORMATS:
        raise ArchspecError(
            "AS933", f"-o {output!r}: the suffix picks the format; use one of " + ", ".join(f".{f}" for f in FORMATS)
        )
    return suffix


def render(dot: Any, fmt: str) -> bytes:
    """DOT text, or the picture `dot` makes of it (svg, png, pdf), or a page with the SVG inlined (html)."""
    if fmt == "dot":
        return str(dot.source).encode()
    if shutil.which("dot") is None:
        raise ArchspecError("AS931", f"the Graphviz program 'dot' is not on PATH; {INSTALL_DOT}")
    graphviz = _graphviz()
    try:
        if fmt == "png":
            dot = dot.copy()
            dot.graph_attr["dpi"] = str(png_dpi(dot.pipe(format="plain")))
        data: bytes = dot.pipe(format="svg" if fmt == "html" else fmt)
    except graphviz.ExecutableNotFound:
        raise ArchspecError("AS931", f"the Graphviz program 'dot' cannot be run; {INSTALL_DOT}") from None
    except graphviz.CalledProcessError as exc:
        detail = (
            (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:]
            if isinstance(exc.stderr, bytes)
            else []
        )
        raise ArchspecError(
            "AS932", f"Graphviz's dot failed to lay out the graph ({'; '.join(detail) or exc}); try a smaller --depth"
        ) from None
    if fmt == "html":
        title = html.escape(dot.name or "graph")
        return (
            f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>\n<body>\n'
            f"{inline_svg(data)}\n</body></html>\n"
        ).encode()
    return data


def png_dpi(plain: bytes) -> int:
    """The dpi to draw a PNG at, from dot's `plain` layout (its first line: graph SCALE WIDTH HEIGHT, in inches):
    PNG_DPI, or fewer where the longer side would pass BITMAP_SIDE pixels (a margin of 1% for the padding)."""
    fields = plain.split(b"\n", 1)[0].split()
    longest = max(float(fields[2]), float(fields[3])) if len(fields) >= 4 and fields[0] == b"graph" else 0.0
    return PNG_DPI if longest <= 0 else max(1, min(PNG_DPI, int(BITMAP_SIDE * 0.99 / longest)))


def inline_svg(svg: bytes) -> str:
    """An SVG document as an element to put in a page: without its XML prolog and doctype."""
    text = svg.decode()
    return text[text.index("<svg") :] if "<svg" in text else text
