"""Tests for archspec.load: YAML text -> plain data with locations, and every AS1xx rejection."""

from __future__ import annotations

from pathlib import Path
import time

import pytest

from archspec.errors import Location, SpecErrors
from archspec.load import MAX_DEPTH, MAX_FILE_BYTES, Document, load_file, load_text


def errors_of(text: str) -> list[tuple[str, int, int]]:
    """(code, line, column) of every error load_text reports, in order."""
    with pytest.raises(SpecErrors) as info:
        load_text(text, "spec.yaml")
    return [(e.code, e.location.line, e.location.column) for e in info.value.errors if e.location]


def only_error(text: str) -> tuple[str, int, int]:
    found = errors_of(text)
    assert len(found) == 1, found
    return found[0]


# --- data and locations ---------------------------------------------------------------------------

DOC = """\
# a comment line
name: net
layers:
  - op: conv
    args: {k: 3, s: [1, 2]}
  - op: relu
params:
  width: 64
"""


def test_plain_data() -> None:
    doc = load_text(DOC, "net.yaml")
    assert doc.file == "net.yaml"
    assert doc.data == {
        "name": "net",
        "layers": [{"op": "conv", "args": {"k": 3, "s": [1, 2]}}, {"op": "relu"}],
        "params": {"width": 64},
    }
    assert type(doc.data) is dict and type(doc.data["layers"]) is list


def test_nested_locations() -> None:
    doc = load_text(DOC, "net.yaml")
    loc = lambda line, col: Location("net.yaml", line, col)  # noqa: E731
    assert doc.locations[("name",)] == loc(2, 7)
    assert doc.locations[("layers",)] == loc(4, 3)
    assert doc.locations[("layers", 0)] == loc(4, 5)
    assert doc.locations[("layers", 0, "op")] == loc(4, 9)
    assert doc.locations[("layers", 0, "args")] == loc(5, 11)
    assert doc.locations[("layers", 0, "args", "s", 1)] == loc(5, 25)
    assert doc.locations[("layers", 1, "op")] == loc(6, 9)
    assert doc.locations[("params", "width")] == loc(8, 10)
    assert doc.key_locations[("layers", 0, "args")] == loc(5, 5)
    assert doc.key_locations[("params", "width")] == loc(8, 3)
    assert doc.key_locations[("layers", 0, "args", "s")] == loc(5, 18)


def test_locate_falls_back_to_ancestor_and_root() -> None:
    doc = load_text(DOC, "net.yaml")
    assert doc.locate(["layers", 0, "args", "missing"]) == Location("net.yaml", 5, 11)
    assert doc.locate(("layers", 7)) == Location("net.yaml", 4, 3)
    assert doc.locate(()) == Location("net.yaml", 1, 1)
    assert doc.locate(("nope", "deeper")) == Location("net.yaml", 1, 1)
    assert doc.locate_key(("params", "width")) == Location("net.yaml", 8, 3)
    assert doc.locate_key(("layers", 1)) == doc.locate(("layers", 1))  # list items have no key


def test_document_is_read_only() -> None:
    doc = load_text("a: 1\n")
    with pytest.raises(TypeError):
        doc.locations[("b",)] = Location("x", 1, 1)  # type: ignore[index]
    assert isinstance(doc, Document) and doc.file == "<string>"


@pytest.mark.parametrize("text", ["", "# only a comment\n\n# and another\n", "---\n", "~\n"])
def test_empty_document_is_none(text: str) -> None:
    assert load_text(text).data is None


# --- scalar resolution ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plain", "value"),
    [
        ("null", None),
        ("~", None),
        ("", None),
        ("NULL", None),
        ("true", True),
        ("False", False),
        ("TRUE", True),
        ("0", 0),
        ("-17", -17),
        ("+5", 5),
        ("1_000", 1000),
        ("1.5", 1.5),
        ("-2.", -2.0),
        (".5", 0.5),
        ("1e-3", 1e-3),
        ("1.5E+3", 1500.0),
        ("2e3", 2000.0),
        # YAML 1.1 forms that other tools read as numbers or dates stay strings here.
        ("0x1f", "0x1f"),
        ("0o17", "0o17"),
        ("1:20", "1:20"),
        ("2001-12-14", "2001-12-14"),
        ("1__0", "1__0"),
        (".", "."),
        ("-x", "-x"),
        ("+", "+"),
        ("nan", "nan"),
        ("1.2.3", "1.2.3"),
        ("yes_please", "yes_please"),
    ],
)
def test_plain_scalars(plain: str, value: object) -> None:
    data = load_text(f"v: {plain}\n").data
    assert data == {"v": value}
    assert type(data["v"]) is type(value)


@pytest.mark.parametrize("quoted", ["'yes'", '"1"', "'null'", '".nan"', "'true'", "|\n  on\n"])
def test_quoted_and_block_scalars_are_strings(quoted: str) -> None:
    value = load_text(f"v: {quoted}").data["v"]
    assert isinstance(value, str)


def test_fake_bools_are_fine_as_keys() -> None:
    # `n` and `y` are ordinary parameter names; as keys they can only be strings.
    assert load_text("n: 4\ny: 2\non: 1\n").data == {"n": 4, "y": 2, "on": 1}


# --- AS101 / AS107: reading files ------------------------------------------------------------------


def test_load_file_ok(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("a:\n  b: 1\n", encoding="utf-8")
    doc = load_file(path)
    assert doc.file == str(path)
    assert doc.data == {"a": {"b": 1}}
    assert doc.locations[("a", "b")] == Location(str(path), 2, 6)


def test_load_file_strips_utf8_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfa: 1\n")
    doc = load_file(str(path))
    assert doc.data == {"a": 1}
    assert doc.locations[("a",)] == Location(str(path), 1, 4)


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SpecErrors) as info:
        load_file(missing)
    (error,) = info.value.errors
    assert error.code == "AS101"
    assert error.location == Location(str(missing), 1, 1)
    assert str(error) == f"{missing}:1:1: AS101: no such file; check the path"


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(SpecErrors) as info:
        load_file(tmp_path)
    assert [e.code for e in info.value.errors] == ["AS101"]
    assert info.value.errors[0].location == Location(str(tmp_path), 1, 1)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"a: 1\nname: caf\xe9\n")
    with pytest.raises(SpecErrors) as info:
        load_file(path)
    (error,) = info.value.errors
    assert (error.code, error.location) == ("AS101", Location(str(path), 1, 1))
    assert "UTF-8" in error.message and "line 2" in error.message


def test_too_large_file_is_rejected_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.yaml"
    with open(path, "wb") as f:  # sparse: no disk used, st_size says 5 GB
        f.truncate(5 * 1024**3)

    def no_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file must not be opened")

    monkeypatch.setattr("builtins.open", no_open)
    start = time.perf_counter()
    with pytest.raises(SpecErrors) as info:
        load_file(path)
    assert time.perf_counter() - start < 1
    (error,) = info.value.errors
    assert (error.code, error.location) == ("AS107", Location(str(path), 1, 1))


def test_file_just_over_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(SpecErrors) as info:
        load_file(path)
    assert [e.code for e in info.value.errors] == ["AS107"]
    path.write_bytes(b"#" * MAX_FILE_BYTES)
    assert load_file(path).data is None


def test_load_text_size_counts_utf8_bytes() -> None:
    text = "# " + "é" * (MAX_FILE_BYTES // 2)  # fewer characters than the limit, more bytes
    assert len(text) < MAX_FILE_BYTES
    assert only_error(text) == ("AS107", 1, 1)


# --- AS102: syntax --------------------------------------------------------------------------------


def test_syntax_error_location_and_message() -> None:
    with pytest.raises(SpecErrors) as info:
        load_text("a: 1\nb: [1, 2\nc: 3\n", "s.yaml")
    (error,) = info.value.errors
    assert error.code == "AS102"
    assert (error.location.line, error.location.column) == (3, 2)
    assert "flow sequence" in error.message and "line 2, column 4" in error.message
    assert "\n" not in error.message


def test_syntax_error_bad_indent() -> None:
    assert only_error("a:\n  b: 1\n c: 2\n") == ("AS102", 3, 2)


def test_tab_indent_is_a_syntax_error() -> None:
    assert only_error("a:\n\tb: 1\n") == ("AS102", 2, 1)


def test_control_character() -> None:
    with pytest.raises(SpecErrors) as info:
        load_text("a: 1\nb: x\x07y\n", "s.yaml")
    (error,) = info.value.errors
    assert (error.code, error.location) == ("AS102", Location("s.yaml", 2, 5))
    assert "U+0007" in error.message


# --- AS103: anchors, aliases, merge keys ---------------------------------------------------------


def test_anchor_and_alias() -> None:
    assert errors_of("a: &x 1\nb: *x\n") == [("AS103", 1, 4), ("AS103", 2, 4)]


def test_merge_key() -> None:
    found = errors_of("base: {a: 1}\nother:\n  <<: {a: 2}\n")
    assert found == [("AS103", 3, 3)]


def test_billion_laughs_is_not_expanded() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghij"):
        prev = "abcdefghij"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    start = time.perf_counter()
    with pytest.raises(SpecErrors) as info:
        load_text("\n".join(lines) + "\n")
    assert time.perf_counter() - start < 1
    codes = {e.code for e in info.value.errors}
    assert codes == {"AS103"}
    assert (info.value.errors[0].location.line, info.value.errors[0].location.column) == (1, 4)


# --- AS104: duplicate keys ------------------------------------------------------------------------


def test_duplicate_key() -> None:
    with pytest.raises(SpecErrors) as info:
        load_text("layers:\n  a: 1\n  a: 2\n", "dup.yaml")
    (error,) = info.value.errors
    assert (error.code, error.location) == ("AS104", Location("dup.yaml", 3, 3))
    assert "'a'" in error.message and "line 2" in error.message
    assert error.path == ("layers", "a")


def test_same_key_in_different_mappings_is_fine() -> None:
    assert load_text("a: {x: 1}\nb: {x: 2}\n").data == {"a": {"x": 1}, "b": {"x": 2}}


# --- AS105 / AS106: numbers and booleans ---------------------------------------------------------


@pytest.mark.parametrize("word", [".nan", ".NaN", ".inf", "-.inf", "+.INF", ".Inf"])
def test_nan_and_inf(word: str) -> None:
    assert only_error(f"a: 1\nb: {word}\n") == ("AS105", 2, 4)


def test_float_overflow_is_infinity() -> None:
    assert only_error("x: 1e999\n") == ("AS105", 1, 4)


def test_huge_integer_is_reported_not_crashing() -> None:
    assert only_error("x: " + "9" * 5000 + "\n") == ("AS105", 1, 4)


@pytest.mark.parametrize("word", ["yes", "No", "ON", "off", "y", "N"])
def test_yaml11_booleans(word: str) -> None:
    with pytest.raises(SpecErrors) as info:
        load_text(f"flags:\n  - {word}\n", "b.yaml")
    (error,) = info.value.errors
    assert str(error) == f"b.yaml:2:5: AS106: {word!r} is not a boolean in a spec; write true or false (or quote it)"
    assert error.path == ("flags", 0)


# --- AS108: depth ---------------------------------------------------------------------------------


def test_depth_limit_boundary() -> None:
    ok = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    load_text(ok)
    too_deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    assert only_error(too_deep) == ("AS108", 1, MAX_DEPTH + 1)


def test_block_nesting_too_deep() -> None:
    text = "".join(" " * i + "k:\n" for i in range(MAX_DEPTH + 5))
    assert only_error(text) == ("AS108", MAX_DEPTH + 1, MAX_DEPTH + 1)


@pytest.mark.parametrize(
    "text",
    ["[" * 10_000, "[" * 100_000 + "]" * 100_000, "{a: " * 100_000, "- " * 400_000],
    ids=["open-10k", "balanced-100k", "mappings-100k", "block-400k"],
)
def test_very_deep_nesting_is_rejected_quickly(text: str) -> None:
    start = time.perf_counter()
    with pytest.raises(SpecErrors) as info:  # never RecursionError
        load_text(text)
    # Milliseconds in fact; PyYAML's 1024-token key lookahead would make it ~0.4 s without the scanner guard.
    assert time.perf_counter() - start < 0.2
    assert [e.code for e in info.value.errors][-1] in ("AS108", "AS102")


# --- AS109: tags, keys, documents -----------------------------------------------------------------


def test_python_tag_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = f'!!python/object/apply:os.system ["touch {marker}"]\n'
    with pytest.raises(SpecErrors) as info:
        load_text(text, "evil.yaml")
    (error,) = info.value.errors
    assert (error.code, error.location) == ("AS109", Location("evil.yaml", 1, 1))
    assert not marker.exists()


@pytest.mark.parametrize("tagged", ["!!str 1", "!foo x", "! x", "!!map {a: 1}", "!!binary aGk="])
def test_any_explicit_tag(tagged: str) -> None:
    assert only_error(f"a: 1\nb: {tagged}\n") == ("AS109", 2, 4)


@pytest.mark.parametrize("key", ["1", "1.5", "null", "~", "true", "False", "[a]", "{x: 1}"])
def test_non_string_keys(key: str) -> None:
    assert only_error(f"ok: 1\n{key}: x\n") == ("AS109", 2, 1)


def test_quoted_keys_are_strings() -> None:
    assert load_text("'1': a\n\"null\": b\n").data == {"1": "a", "null": "b"}


def test_multiple_documents() -> None:
    assert only_error("a: 1\n---\nb: 2\n") == ("AS109", 2, 1)
    assert load_text("---\na: 1\n...\n").data == {"a": 1}


# --- collecting errors ----------------------------------------------------------------------------


def test_all_errors_in_one_pass() -> None:
    text = (
        "a: 1\n"
        "a: 2\n"  # AS104
        "b: yes\n"  # AS106
        "c: .nan\n"  # AS105
        "d: !!str x\n"  # AS109
        "e: &anchor 3\n"  # AS103
        "1: z\n"  # AS109
        "f: [1, 2\n"  # AS102 (stops parsing)
    )
    with pytest.raises(SpecErrors) as info:
        load_text(text, "many.yaml")
    got = [(e.code, e.location.line, e.location.column) for e in info.value.errors]
    assert got == [
        ("AS104", 2, 1),
        ("AS106", 3, 4),
        ("AS105", 4, 4),
        ("AS109", 5, 4),
        ("AS103", 6, 4),
        ("AS109", 7, 1),
        ("AS102", 9, 1),
    ]
    assert (
        str(info.value).splitlines()[0]
        == "many.yaml:2:1: AS104: duplicate key 'a' (first written at line 1); remove one"
    )


def test_load_file_shows_the_path_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("rel.yaml").write_text("x: on\n", encoding="utf-8")
    with pytest.raises(SpecErrors) as info:
        load_file("rel.yaml")
    assert str(info.value.errors[0]).startswith("rel.yaml:1:4: AS106: ")
