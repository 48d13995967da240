"""Wall time of the views on the largest specs, in process (no interpreter start-up), best of N runs.

    python benchmarks/views_timing.py [--specs vit_h_14,densenet264,swin_s] [--repeats 3]

Per spec: compile (load, validate, lower, count: what every command pays first), then each view on the
compiled IR: graph (DOT text, and the `dot` program's SVG), card (graph included), diff (against the next
smaller variant of its family) and fingerprint. The CLI adds Python's start-up and the imports (about
0.7 s on an idle machine). Not a test: timings on shared machines vary.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from pathlib import Path
import time
from typing import Any

from archspec import pipeline
from archspec.registry import default_registry
from archspec.views import card, diff, fingerprint, graph

ROOT = Path(__file__).resolve().parents[1]
PARTNER = {"vit_h_14": "vit_l_16", "densenet264": "densenet201", "swin_s": "swin_t"}


def best(repeats: int, step: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", default="vit_h_14,densenet264,swin_s")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    registry = default_registry()
    for name in args.specs.split(","):
        path = ROOT / "specs" / f"{name}.yaml"
        compiled = pipeline.compile_spec(path, registry=registry)
        other = pipeline.compile_spec(ROOT / "specs" / f"{PARTNER.get(name, name)}.yaml", registry=registry)
        dot = graph.to_dot(compiled.graph, compiled.costs, registry)
        rows = {
            "compile": best(args.repeats, partial(pipeline.compile_spec, path, registry=registry)),
            "graph (DOT text)": best(args.repeats, partial(graph.to_dot, compiled.graph, compiled.costs, registry)),
            "graph (dot -> svg)": best(args.repeats, partial(graph.render, dot, "svg")),
            "card": best(args.repeats, partial(card.render_card, path, compiled, registry)),
            f"diff vs {PARTNER.get(name, name)}": best(
                args.repeats, partial(diff.diff, other.graph, other.costs, compiled.graph, compiled.costs)
            ),
            "fingerprint": best(args.repeats, partial(fingerprint.fingerprint, compiled.graph)),
        }
        print(f"{name}: {len(compiled.graph)} IR nodes")
        for what, seconds in rows.items():
            print(f"  {what:<24} {seconds:7.3f} s")


if __name__ == "__main__":
    main()
