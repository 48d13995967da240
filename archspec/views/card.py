"""A model card: one self-contained HTML page about a spec (no scripts, no network at view time).

The page holds the description and paper, input and output shapes, totals, the expect: status, the
graph (inline SVG from `dot`), params and MACs per stage as an inline SVG bar chart, the per-layer
table and the spec source (the thin spec and the family it uses). The template only loops and
substitutes: every figure and every bar's geometry is computed here.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path
from typing import Any

from archspec.errors import ArchspecError
from archspec.lower import fmt_shape
from archspec.passes.counts import Costs
from archspec.pipeline import Compiled
from archspec.registry import Registry
from archspec.report import human
from archspec.views import graph as graph_view
from archspec.views.structure import stage_of

TEMPLATES = Path(__file__).parent / "templates"
BAR_WIDTH = 260  # pixels of the longest bar in each column of the chart
ROW_HEIGHT = 18


@dataclass(frozen=True)
class Bar:
    stage: str
    params: int
    macs: int
    params_width: float
    macs_width: float
    y: int


@dataclass(frozen=True)
class ExpectRow:
    figure: str
    expected: str
    computed: str
    status: str  # "ok", "differs" or "not stated"


def stage_bars(costs: Costs) -> list[Bar]:
    totals: dict[str, list[int]] = {}
    for layer in costs.layers:
        entry = totals.setdefault(stage_of(layer.name), [0, 0])
        entry[0] += layer.params
        entry[1] += layer.macs
    top_params = max((p for p, _ in totals.values()), default=0) or 1
    top_macs = max((m for _, m in totals.values()), default=0) or 1
    return [
        Bar(stage, p, m, round(BAR_WIDTH * p / top_params, 1), round(BAR_WIDTH * m / top_macs, 1), k * ROW_HEIGHT)
        for k, (stage, (p, m)) in enumerate(totals.items())
    ]


def expect_rows(compiled: Compiled) -> list[ExpectRow]:
    expect, costs = compiled.resolved.expect, compiled.costs
    figures: list[tuple[str, Any, Any, Any]] = [
        ("params", expect.params if expect else None, costs.params, lambda v: f"{v:,}"),
        ("MACs", expect.macs if expect else None, costs.macs, lambda v: f"{v:,}"),
        ("input", expect.input if expect else None, list(costs.input), fmt_shape),
        ("output", expect.output if expect else None, list(costs.output), fmt_shape),
    ]
    return [
        ExpectRow(
            name,
            "—" if wanted is None else show(wanted),
            show(got),
            "not stated" if wanted is None else "ok" if wanted == got else "differs",
        )
        for name, wanted, got, show in figures
    ]


def _sources(spec_path: str | os.PathLike[str], compiled: Compiled) -> list[tuple[str, str]]:
    paths = dict.fromkeys([os.fspath(spec_path), compiled.resolved.doc.file])
    found = []
    for path in paths:
        try:
            found.append((path, Path(path).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError):  # read once already by load; gone since: show what is left
            continue
    return found


def render_card(
    spec_path: str | os.PathLike[str],
    compiled: Compiled,
    registry: Registry | None = None,
    depth: int = graph_view.DEFAULT_DEPTH,
    collapse: bool = True,
) -> tuple[str, list[str]]:
    """The page's HTML and warnings (a graph left out because `dot` is missing)."""
    try:
        import jinja2
        from markupsafe import Markup
    except ImportError:
        raise ArchspecError("AS934", "the card needs jinja2: pip install 'archspec[views]'") from None
    warnings: list[str] = []
    try:
        svg = graph_view.inline_svg(
            graph_view.render(graph_view.to_dot(compiled.graph, compiled.costs, registry, depth, collapse), "svg")
        )
    except ArchspecError as exc:
        if exc.code not in ("AS931", "AS934"):
            raise
        svg, note = "", f"the graph is left out: {exc.message}"
        warnings.append(note)
    resolved, costs = compiled.resolved, compiled.costs
    bars = stage_bars(costs)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    page = env.get_template("card.html.j2").render(
        name=resolved.name,
        description=resolved.description.strip(),
        paper=resolved.paper,
        variant=resolved.variant,
        input=fmt_shape(costs.input),
        output=fmt_shape(costs.output),
        params=f"{costs.params:,}",
        params_human=human(costs.params),
        macs=f"{costs.macs:,}",
        macs_human=human(costs.macs),
        layers=[(l.name, l.op, fmt_shape(l.output), f"{l.params:,}", f"{l.macs:,}") for l in costs.layers],
        expect=expect_rows(compiled),
        expect_source=resolved.expect.source if resolved.expect is not None else "",
        graph_svg=Markup(svg),
        graph_note=" ".join(warnings),
        bars=bars,
        bar_width=BAR_WIDTH,
        row_height=ROW_HEIGHT,
        chart_height=len(bars) * ROW_HEIGHT + 24,
        human=human,
        sources=_sources(spec_path, compiled),
    )
    return page, warnings
