"""Patterns over dotted layer and tensor paths: the `layer:` globs of `init:` rules and the rename rules
of `weights:`. Torch-free and regex-free: spec text is matched part by part, in time linear in the
lengths involved, so a stranger's pattern cannot make matching slow.

A path is split at dots into parts (`layer1.0.conv1.weight` -> `layer1`, `0`, `conv1`, `weight`).

Globs (`init:` rules' `layer:`): `*` within a part matches any characters of that part, `**` as a
whole part matches any number of parts (none included). `**.bn3` matches `bn3` and `layer1.0.bn3`.

Rename rules (`weights: rename:`), `{ours: PATTERN, ref: TEMPLATE}`: PATTERN is matched against whole
parts at the start of one of our tensor names (anywhere when it begins with `**`); a part may hold one
capture `{name}` between literal text (`denselayer{i}`), which takes the characters there (an integer
when they are digits). The matched parts are replaced by TEMPLATE, whose `{...}` are expressions over
the captures (`{i + 1}`) and whose leading `**` is the prefix `**` matched; the rest of the name stays.
`ref: "transposed(TEMPLATE)"` says the reference stores that tensor transposed (Hugging Face GPT-2's
Conv1D keeps its weight as [in, out], a linear layer's is [out, in]): such a rule matches only whole
tensor names (its pattern reaches the leaf, `**.c_attn.weight`), and the tensor found is transposed
before its shape is checked. The rule then decides alone: our own name is not looked up in the
checkpoint, so a square weight stored transposed can never pair untransposed by accident of shape
(a checkpoint in our own layout is recognised as a whole: archspec.backends.torch.weights).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
import re

from archspec.expr import ExprError, Meter, evaluate, names_used

_CAPTURE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_LITERAL = re.compile(r"[A-Za-z0-9_]*")
TRANSPOSED = "transposed("  # ref: "transposed(TEMPLATE)"


class PatternError(ValueError):
    """A glob or rename rule that cannot be used; the message says why."""


# -- globs ----------------------------------------------------------------------------------------
def _part_matches(pattern: str, text: str) -> bool:
    """`*` wildcards within one part: greedy with backtracking to the last star only, which is linear
    (the classic wildcard algorithm), not exponential."""
    p = t = 0
    star, mark = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] != "*" and pattern[p] == text[t]:
            p, t = p + 1, t + 1
        elif p < len(pattern) and pattern[p] == "*":
            star, mark, p = p, t, p + 1
        elif star >= 0:
            p, mark = star + 1, mark + 1
            t = mark
        else:
            return False
    return all(c == "*" for c in pattern[p:])


def glob_matches(pattern: str, path: str) -> bool:
    """Whether dotted `path` matches the glob `pattern` (see the module docstring)."""
    pats, parts = pattern.split("."), path.split(".")
    # reach[j]: the first k pattern parts can match the first j path parts (dynamic programming).
    reach = [True] + [False] * len(parts)
    for pat in pats:
        nxt = [False] * (len(parts) + 1)
        if pat == "**":
            seen = False
            for j in range(len(parts) + 1):
                seen = seen or reach[j]
                nxt[j] = seen
        else:
            for j in range(len(parts)):
                if reach[j] and _part_matches(pat, parts[j]):
                    nxt[j + 1] = True
        reach = nxt
    return reach[len(parts)]


def glob_problem(pattern: object) -> str | None:
    if not isinstance(pattern, str) or not pattern:
        return "a layer pattern is a non-empty string such as 'layer*.*.bn3' or '**.fc'"
    for part in pattern.split("."):
        if part != "**" and not _LITERAL.fullmatch(part.replace("*", "")):
            return f"part {part!r}: use letters, digits, _ and * (or ** alone for any number of parts)"
        if part == "":
            return "empty part (two dots in a row, or a leading or trailing dot)"
    return None


# -- rename rules ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Part:
    prefix: str
    capture: str | None = None
    suffix: str = ""

    def match(self, text: str) -> tuple[bool, str | None]:
        if self.capture is None:
            return text == self.prefix, None
        inner = len(text) - len(self.prefix) - len(self.suffix)
        if inner < 1 or not text.startswith(self.prefix) or not text.endswith(self.suffix):
            return False, None
        return True, text[len(self.prefix) : len(text) - len(self.suffix)]


@dataclass(frozen=True)
class Rename:
    """One parsed rename rule."""

    ours: str
    ref: str
    anywhere: bool
    parts: tuple[_Part, ...]
    template: tuple[str | tuple[str], ...]  # literal text, or (expression,)
    transposed: bool = False  # ref: "transposed(...)": the reference stores the (2-D) tensor transposed

    def apply(self, name: str) -> str | None:
        """`name` with the first match replaced, or None where the pattern does not match."""
        parts = name.split(".")
        starts = range(len(parts) - len(self.parts) + 1) if self.anywhere else range(1)
        for start in starts:
            captures: dict[str, int | str] = {}
            for k, part in enumerate(self.parts):
                if start + k >= len(parts):
                    break
                ok, value = part.match(parts[start + k])
                if not ok:
                    break
                if part.capture is not None and value is not None:
                    captures[part.capture] = int(value) if value.isdigit() else value
            else:
                rest = parts[start + len(self.parts) :]
                if self.transposed and rest:  # a transposition applies to a whole tensor, never to a prefix
                    continue
                middle = self._fill(captures, ".".join(parts[:start]))
                return ".".join(p for p in (middle, *rest) if p)
        return None

    def _fill(self, captures: Mapping[str, int | str], prefix: str) -> str:
        out = []
        for piece in self.template:
            if isinstance(piece, tuple):
                try:
                    value = evaluate(piece[0], captures, Meter())
                except ExprError as exc:
                    raise PatternError(
                        f"rename rule {self.ours!r} -> {self.ref!r}: {{{piece[0]}}}: {exc.message}"
                    ) from None
                if isinstance(value, bool) or not isinstance(value, (int, str)):
                    raise PatternError(
                        f"rename rule {self.ours!r} -> {self.ref!r}: {{{piece[0]}}} gives {value!r}, "
                        "not a whole number or a string"
                    )
                out.append(str(value))
            elif piece == "**":
                out.append(prefix)
            else:
                out.append(piece)
        return "".join(out).strip(".").replace("..", ".")


def parse_rename(ours: object, ref: object) -> Rename:
    """A rename rule, or PatternError saying what is wrong with it."""
    if not isinstance(ours, str) or not ours or not isinstance(ref, str):
        raise PatternError("a rename rule is {ours: PATTERN, ref: TEMPLATE}, both strings")
    transposed = ref.startswith(TRANSPOSED) and ref.endswith(")")
    if transposed:
        ref = ref[len(TRANSPOSED) : -1]
        if not ref or "(" in ref or ")" in ref:
            raise PatternError("ref: transposed(...) takes one name template, e.g. transposed(**.c_attn.weight)")
    elif "(" in ref or ")" in ref:
        raise PatternError(
            f"ref: {ref!r}: the only form with parentheses is transposed(TEMPLATE), for a tensor "
            "the reference stores transposed"
        )
    pats = ours.split(".")
    anywhere = pats[0] == "**"
    if anywhere:
        pats = pats[1:]
    if not pats:
        raise PatternError(f"ours: {ours!r} matches no part; name at least one")
    parts, seen = [], set()
    for pat in pats:
        found = _CAPTURE.findall(pat)
        if len(found) > 1 or (not found and not _LITERAL.fullmatch(pat)) or not pat:
            raise PatternError(
                f"ours: part {pat!r} of {ours!r}: use letters, digits and _, with at most one "
                "{capture} per part (e.g. denselayer{i})"
            )
        if found:
            name = found[0]
            prefix, _, suffix = pat.partition("{" + name + "}")
            if not _LITERAL.fullmatch(prefix) or not _LITERAL.fullmatch(suffix):
                raise PatternError(f"ours: part {pat!r}: only letters, digits and _ around a capture")
            if name in seen:
                raise PatternError(f"ours: capture {{{name}}} appears twice in {ours!r}")
            seen.add(name)
            parts.append(_Part(prefix, name, suffix))
        else:
            parts.append(_Part(pat))
    template: list[str | tuple[str]] = []
    text = ref
    if text == "**" or text.startswith("**."):
        if not anywhere:
            raise PatternError(f"ref: {ref!r} starts with ** but ours: {ours!r} does not")
        template.append("**")
        template.append(".")
        text = text[2:].lstrip(".")
    while text:
        start = text.find("{")
        if start < 0:
            template.append(text)
            break
        end = text.find("}", start)
        if end < 0:
            raise PatternError(f"ref: {ref!r} has a {{ without its }}")
        if start:
            template.append(text[:start])
        source = text[start + 1 : end]
        try:
            unknown = names_used(source) - seen
        except ExprError as exc:
            raise PatternError(f"ref: {{{source}}}: {exc.message}") from None
        if unknown:
            raise PatternError(
                f"ref: {{{source}}} uses {sorted(unknown)}; it may use the captures of ours: {sorted(seen) or 'none'}"
            )
        template.append((source,))
        text = text[end + 1 :]
    if "}" in "".join(p for p in template if isinstance(p, str)):
        raise PatternError(f"ref: {ref!r} has a }} without its {{")
    return Rename(
        ours, f"{TRANSPOSED}{ref})" if transposed else ref, anywhere, tuple(parts), tuple(template), transposed
    )


def renamed(name: str, rules: Sequence[Rename]) -> str:
    """`name` after every rule, in order (each rule rewrites its first match)."""
    return renamed_as(name, rules)[0]


def renamed_as(name: str, rules: Sequence[Rename]) -> tuple[str, bool]:
    """`name` after every rule, in order, and whether a rule that applied said the reference stores the
    tensor transposed."""
    transposed = False
    for rule in rules:
        new = rule.apply(name)
        if new is not None:
            name, transposed = new, transposed or rule.transposed
    return name, transposed
