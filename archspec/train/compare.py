"""`archspec compare`: train several entries one after another and write the comparison.

An entry is `SPEC[:key=value,...]`. Keys that name a training option (augment, lr, epochs, batch_size,
optimizer, schedule, weight_decay, warmup_epochs, label_smoothing, variant) change that option for the entry; any other key is a spec
parameter, as with --set. Several augmentations in one entry are joined with '+':
`seed_cnn:augment=hflip+brightness=0.75`. Each entry trains in its own folder under --out, so
`--resume` continues a comparison that was interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import re
import sys
from typing import Any

from archspec.backends.artifacts import write_bytes_atomically
from archspec.errors import ArchspecError, SpecErrors
from archspec.params import parse_override
from archspec.train import TrainOptions, train
from archspec.train.report import markdown, write_csv, write_curves

BAD_ENTRY = "AS918"
TRAINING_KEYS = {
    "augment": str,
    "lr": float,
    "epochs": int,
    "batch_size": int,
    "optimizer": str,
    "schedule": str,
    "weight_decay": float,
    "variant": str,
    "warmup_epochs": float,
    "label_smoothing": float,
}


@dataclass(frozen=True)
class Entry:
    label: str
    spec: str
    overrides: dict[str, Any]
    training: dict[str, Any]


def parse_entry(text: str, resolve_spec: Any = str) -> Entry:
    spec, sep, rest = text.partition(":")
    if not spec:
        raise ArchspecError(BAD_ENTRY, f"entry {text!r}: write SPEC or SPEC:key=value,... (e.g. seed_cnn:dropout=true)")
    overrides: dict[str, Any] = {}
    training: dict[str, Any] = {}
    for item in (p for p in _split(rest) if p.strip()) if sep else ():
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ArchspecError(BAD_ENTRY, f"entry {text!r}: {item!r} is not key=value")
        if key in TRAINING_KEYS:
            kind = TRAINING_KEYS[key]
            try:
                training[key] = value.replace("+", ",") if key == "augment" else kind(value)
            except ValueError:
                raise ArchspecError(
                    BAD_ENTRY, f"entry {text!r}: {key} must be {kind.__name__}, not {value!r}"
                ) from None
        else:
            try:
                overrides.update([parse_override(item)])
            except SpecErrors as exc:
                raise ArchspecError(BAD_ENTRY, f"entry {text!r}: {exc.errors[0].message}") from None
    return Entry(text, resolve_spec(spec), overrides, training)


def _split(text: str) -> list[str]:
    """Split at commas outside brackets, so a list value stays whole: `widths=[4,8,8],dropout=true`."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += (char in "[{") - (char in "]}")
        if char == "," and depth <= 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def folder_name(label: str) -> str:
    """`specs/seed_cnn.yaml:dropout=true` -> `seed_cnn_dropout=true`: the spec's stem, then its settings."""
    spec, sep, rest = label.partition(":")
    text = Path(spec).stem + ("_" + rest if sep else "")
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", text).strip("._") or "entry"


def compare(entries: list[Entry], base: TrainOptions, out: Path) -> list[tuple[str, Any]]:
    """Train every entry (base options, changed by the entry), then write the table and curves to `out`."""
    names = [folder_name(e.label) for e in entries]
    if len(set(names)) != len(names):
        raise ArchspecError(
            BAD_ENTRY, "two entries are the same (or differ only in characters a folder name cannot hold)"
        )
    runs = [
        base.with_(
            spec=entry.spec, overrides={**base.overrides, **entry.overrides}, out=str(out / name), **entry.training
        )
        for entry, name in zip(entries, names)
    ]
    _check_all(runs)
    results = []
    for index, (entry, options) in enumerate(zip(entries, runs)):
        if not base.quiet:
            print(f"[{index + 1}/{len(entries)}] {entry.label}", file=sys.stderr, flush=True)
        results.append((entry.label, train(options)))
    text = markdown(results)
    write_bytes_atomically(out / "results.md", text.encode())
    write_csv(out / "results.csv", results)
    write_curves(out, results)
    return results


def _check_all(runs: list[TrainOptions]) -> None:
    """Every entry's options and spec (with its overrides) before the first trains: a typo in the last
    entry must not surface after an hour of training the others."""
    from archspec import pipeline
    from archspec.train import loop

    for options in runs:
        loop.check(options)
        pipeline.compile_spec(options.spec, options.overrides, variant=options.variant)
