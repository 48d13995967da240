"""`valid_specs()`: random valid full specs and the figures they must compile to."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import strategies as st

from archspec.testing.strategies.facts import Case, Data, SpecFacts, dump
from archspec.testing.strategies.stages import StageWriter

STAGES = (
    "plain",
    "plain",
    "misc",
    "residual_inline",
    "concat",
    "squeeze_excite",
    "repeated",
    "switched_off",
    "residual_stage",
    "decoder",
    "windows",
)


@st.composite
def cases(draw: Callable[[st.SearchStrategy[Any]], Any], max_stages: int = 5, stages: Sequence[str] = STAGES) -> Case:
    c, h, w = draw(st.integers(1, 8)), draw(st.integers(8, 40)), draw(st.integers(8, 40))
    env = {"num_classes": draw(st.integers(1, 10)), "base": draw(st.integers(2, 8))}
    params: Data = {"num_classes": env["num_classes"], "base": {"type": "int", "default": env["base"], "min": 1}}
    spec_vars: Data = {}
    if draw(st.booleans()):
        spec_vars["wide"] = "${base * 2}"
        env["wide"] = env["base"] * 2
    if h == w and draw(st.booleans()):
        params["resolution"] = h
        env["resolution"] = h
        shape: list[Any] = [c, "$resolution", "$resolution"]
    else:
        shape = [c, h, w]
    writer = StageWriter(draw, (c, h, w), env)
    for stage in draw(st.lists(st.sampled_from(stages), min_size=1, max_size=max_stages)):
        getattr(writer, stage)()
    writer.head()
    writer.scopes[("layers",)] = tuple(writer.names)

    data: Data = {
        "archspec": 1,
        "name": f"net{draw(st.integers(0, 999))}",
        "description": "A network drawn by archspec.testing.strategies.valid_specs.",
        "params": params,
    }
    if spec_vars:
        data["vars"] = spec_vars
    data["input"] = shape
    if writer.blocks:
        data["blocks"] = writer.blocks
    data["layers"] = writer.layers
    facts = SpecFacts((c, h, w), writer.shape, writer.params, writer.macs, dict(writer.shapes), dict(writer.ops))
    if draw(st.integers(0, 3)) == 0:
        data["expect"] = {"params": facts.params, "macs": facts.macs, "input": [c, h, w], "output": list(facts.output)}
    return Case(data, facts, tuple(writer.infos), dict(writer.scopes), env, writer.flatten, writer.classifier_in)


def valid_specs(max_stages: int = 5, stages: Sequence[str] = STAGES) -> st.SearchStrategy[tuple[str, SpecFacts]]:
    """(YAML text, SpecFacts) of random valid full specs; see the module docstring for what they hold.
    `stages` narrows the kinds of stage drawn (names in `STAGES`), e.g. ("misc",) for the single-layer ops."""
    return cases(max_stages, tuple(stages)).map(lambda case: (dump(case.data), case.facts))
