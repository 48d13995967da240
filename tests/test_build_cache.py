"""archspec.build remembers the specs it compiled (pipeline._compiled_for_build) and uses one again only
while every file it read holds the same bytes: an edit is seen at the next build even when it keeps the
file's size and lands within the file system's timestamp resolution, as these quick rewrites do."""

from __future__ import annotations

from pathlib import Path

import pytest

import archspec
from archspec import pipeline
from archspec.errors import SpecErrors

LIB = """\
archspec: 1
name: lib
blocks:
  head:
    params: {n: {type: int}}
    layers:
      - {op: flatten}
      - {name: fc, op: linear, out: $n}
"""

FAMILY = """\
archspec: 1
name: family
imports: [lib.yaml]
params: {width: 4}
variants: {small: {width: 4}, large: {width: 6}}
input: [3, 8, 8]
layers:
  - {name: conv, op: conv2d, out: $width, kernel: 3}
  - {name: out, op: head, n: 7}
"""


def widths(module: object) -> tuple[int, int]:
    return module.conv.out_channels, module.out.fc.out_features  # type: ignore[attr-defined]


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    (tmp_path / "lib.yaml").write_text(LIB)
    (tmp_path / "family.yaml").write_text(FAMILY)
    (tmp_path / "thin.yaml").write_text("archspec: 1\nuse: family.yaml\nvariant: small\n")
    return tmp_path


def test_an_edit_of_any_file_read_is_seen_by_the_next_build(specs: Path) -> None:
    thin = specs / "thin.yaml"
    assert widths(archspec.build(thin)) == (4, 7)
    assert widths(archspec.build(thin)) == (4, 7)  # remembered
    (specs / "thin.yaml").write_text("archspec: 1\nuse: family.yaml\nvariant: large\n")  # the spec itself
    assert widths(archspec.build(thin)) == (6, 7)
    (specs / "lib.yaml").write_text(LIB.replace("out: $n", "out: 5"))  # an imported library, same size
    assert widths(archspec.build(thin)) == (6, 5)
    (specs / "family.yaml").write_text(FAMILY.replace("large: {width: 6}", "large: {width: 8}"))  # the family
    assert widths(archspec.build(thin)) == (8, 5)


def test_arguments_are_part_of_the_key(specs: Path) -> None:
    family = specs / "family.yaml"
    assert widths(archspec.build(family)) == (4, 7)
    assert widths(archspec.build(family, width=5)) == (5, 7)
    assert widths(archspec.build(family, variant="large")) == (6, 7)
    assert widths(archspec.build(family)) == (4, 7)


def test_a_broken_edit_is_reported_not_hidden_by_the_cache(specs: Path) -> None:
    family = specs / "family.yaml"
    archspec.build(family)
    family.write_text(FAMILY.replace("kernel: 3", "kernel: -3"))
    with pytest.raises(SpecErrors):
        archspec.build(family)
    family.unlink()
    with pytest.raises(SpecErrors):
        archspec.build(family)


def test_a_remembered_compile_is_the_same_object_and_never_handed_out(specs: Path) -> None:
    family = specs / "family.yaml"
    archspec.build(family)
    cached = [entry[2] for entry in pipeline._BUILD_CACHE.values() if entry[2].resolved.doc.file == str(family)]
    assert len(cached) == 1
    archspec.build(family)
    assert [entry[2] for entry in pipeline._BUILD_CACHE.values() if entry[2].resolved.doc.file == str(family)] == cached
    assert archspec.compile_spec(family) is not cached[0]
