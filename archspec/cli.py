"""The command line: turns arguments into options and calls the pipeline. No logic of its own.

Exit codes: 0 ok, 1 spec errors (or a bad weights file), 2 usage errors.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import json
import os
from pathlib import Path
import sys

from archspec import pipeline
from archspec.backends.coverage import format_report
from archspec.errors import CODES, ArchspecError, SpecErrors, did_you_mean
from archspec.params import parse_override
from archspec.registry import default_registry
from archspec.validate import resolve_file
from archspec.report import describe_op, human, table

SPECS_DIR = Path("specs")


def _spec_path(text: str) -> str:
    """A path, or the bare name of a spec in ./specs (`archspec summary vgg16`)."""
    path = Path(text)
    if not path.exists() and path.suffix == "" and (SPECS_DIR / f"{text}.yaml").exists():
        return str(SPECS_DIR / f"{text}.yaml")
    return text


def _overrides(items: Sequence[str]) -> dict[str, object]:
    return dict(parse_override(item) for item in items)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="archspec", description="Compile neural-network architecture specs.")
    sub = parser.add_subparsers(dest="command", required=True)

    def spec_command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("spec", help="spec file, or the name of a spec in ./specs")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a parameter")
        p.add_argument("--variant", help="a row of the family's variants table (instead of the thin spec's)")
        return p

    spec_command("validate", "check a spec; print every error as file:line:col: code: message")
    summary = spec_command("summary", "per-layer table of output shapes, parameters and MACs")
    summary.add_argument("--json", action="store_true", help="one JSON object on stdout")
    build = spec_command("build", "compile a spec with a backend and write the artifact")
    build.add_argument("-o", "--output", help="output file (default: <name><backend suffix>, e.g. vgg16.pt2)")
    build.add_argument("--backend", default="torch")
    build.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    build.add_argument("--weights", help="initial weights: a reference state dict (.safetensors, .pt, .pth)")
    build.add_argument("--save-weights", action="store_true",
                       help="also write the weights as <output>.safetensors (backends that write source: torch-source)")
    build.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="a backend setting, e.g. --option precision=fp16 (archspec check --backend NAME lists them)")
    check = spec_command("check", "per-layer report of what a backend compiles, falls back on, or cannot compile")
    check.add_argument("--backend", default="torch")
    lister = sub.add_parser("list", help="specs, ops and backends, with the plugin providing each")
    lister.add_argument("--specs", default=str(SPECS_DIR), help="folder of specs to list")
    sub.add_parser("schema", help="print the spec format as JSON Schema")
    explain = sub.add_parser("explain", help="what an error code means, or an op's arguments")
    explain.add_argument("code", help="an error code (AS501) or an op name (conv2d)")
    return parser


def _run(args: argparse.Namespace) -> int:
    registry = default_registry()
    if args.command == "list":
        return _list(Path(args.specs))
    if args.command == "schema":
        from archspec.schema import json_schema

        print(json.dumps(json_schema(registry), indent=2))
        return 0
    if args.command == "explain":
        if args.code in registry.ops:
            print(describe_op(registry.op(args.code), registry.ops[args.code].provider))
            return 0
        code = args.code.upper()
        if code not in CODES:
            print(f"{args.code!r} is neither an error code (AS101 ... AS807) nor an op.{did_you_mean(args.code, registry.ops)}",
                  file=sys.stderr)
            return 2
        print(f"{code}: {CODES[code]}")
        return 0
    path = _spec_path(args.spec)
    overrides = _overrides(args.set)
    if args.command == "validate":
        compiled = pipeline.compile_spec(path, overrides, registry, args.variant)
        c = compiled.costs
        print(f"ok: {path}: {compiled.graph.name}, {c.params:,} params, {human(c.macs)} MACs, output {list(c.output)}")
    elif args.command == "summary":
        costs = pipeline.compile_spec(path, overrides, registry, args.variant).costs
        print(json.dumps(costs.to_json()) if args.json else table(costs))
    elif args.command == "build":
        out = pipeline.build_file(path, args.output, backend=args.backend, seed=args.seed, weights=args.weights,
                                  overrides=overrides, variant=args.variant, registry=registry,
                                  save_weights=args.save_weights, settings=_settings(args.option))
        print(f"wrote {out}")
    elif args.command == "check":
        report = pipeline.coverage(pipeline.compile_spec(path, overrides, registry, args.variant), args.backend, registry)
        print(format_report(report, args.backend))
        return 1 if any(s.level == "unsupported" for s in report) else 0
    return 0


def _settings(items: Sequence[str]) -> dict[str, str]:
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ArchspecError("AS806", f"--option {item!r}: write KEY=VALUE, e.g. --option precision=fp16")
        settings[key.strip()] = value.strip()
    return settings


def _list(specs: Path) -> int:
    registry = default_registry()
    print(f"specs in {specs}/:")
    for path in sorted(specs.glob("*.yaml")):
        try:
            resolved = resolve_file(path, registry)
            detail = resolved.spec.description.strip().splitlines()[0] if resolved.spec.description.strip() else ""
            print(f"  {path.stem:<22} {detail}")
        except SpecErrors as exc:
            print(f"  {path.stem:<22} (invalid: {len(exc.errors)} error(s); run archspec validate {path})")
    print("ops:")
    for name in registry.op_names():
        print(f"  {name:<22} {registry.ops[name].provider}")
    print("backends:")
    for name, provided in sorted(registry.backends.items()):
        print(f"  {name:<22} {provided.provider}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    shown = 0
    try:
        registry = default_registry()
        for problem in registry.problems:
            print(f"warning: {problem}", file=sys.stderr)
        shown = len(registry.problems)
        return _run(args)
    except SpecErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        n = len(exc.errors)
        print(f"{n} error{'s' if n != 1 else ''}", file=sys.stderr)
        return 1
    except ArchspecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `archspec summary ... | head` closed our stdout: not an error
        # Point stdout at devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        for problem in default_registry().problems[shown:]:
            print(f"warning: {problem}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
