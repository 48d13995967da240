"""The command line: turns arguments into options and calls the pipeline. No logic of its own.

Exit codes: 0 ok, 1 spec errors (or a bad weights file, or a failed write), 2 usage errors (an option's
value, a spec path that does not exist, an unknown --set key or --variant), 130 interrupted (Ctrl-C or
SIGTERM; a build in progress leaves nothing behind). Everything printed passes through `printable`, so
no name or message from a spec can write control characters to the terminal.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
import contextlib
from contextlib import contextmanager
import json
import os
from pathlib import Path
import signal
import sys
from types import FrameType

from archspec import pipeline
from archspec.backends.coverage import format_report
from archspec.collector import freeze_for_exit, paused
from archspec.errors import CODES, ArchspecError, SpecErrors, did_you_mean
from archspec.extras import require
from archspec.limits import Limits, parse_limit
from archspec.params import COMMAND_LINE, parse_override
from archspec.registry import NO_PLUGINS_VARIABLE, Registry, default_registry
from archspec.report import describe_block, describe_op, human, table
from archspec.text import printable
from archspec.validate import resolve_file, standard_blocks

SPECS_DIR = Path("specs")
USAGE_CODES = frozenset(
    {
        "AS806",  # a bad option value (an unknown backend among them)
        "AS933",  # graph: an unknown -o suffix
        "AS911",
        "AS913",
        "AS918",
    }
)  # training: no dataset there, a bad training option or entry


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False


def _spec_path(text: str) -> str:
    """A path, or the bare name of a spec in ./specs (`archspec summary vgg16`)."""
    path = Path(text)
    if _exists(path):
        return text
    if path.suffix == "" and text.isidentifier() and _exists(SPECS_DIR / f"{text}.yaml"):
        return str(SPECS_DIR / f"{text}.yaml")
    raise ArchspecError(
        "AS806",
        f"no spec file {text!r}"
        + (f" (and no {SPECS_DIR / text}.yaml)" if path.suffix == "" else "")
        + "; give the path of a .yaml spec, or the name of one in ./specs",
    )


def _overrides(items: Sequence[str]) -> dict[str, object]:
    return dict(parse_override(item) for item in items)


def _limits(items: Sequence[str]) -> Limits:
    changes = {}
    for item in items:
        try:
            name, value = parse_limit(item)
        except ValueError as exc:
            raise ArchspecError("AS806", str(exc)) from None
        changes[name] = value
    return Limits().raised(**changes)


def _seed(text: str) -> int:
    try:
        return pipeline.check_seed(int(text))
    except (ValueError, ArchspecError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed: give a whole number from 0 to 2**64-1") from None


def _out(text: str) -> None:
    print(printable(text, keep_newlines=True))


def _err(text: str) -> None:
    """One line on stderr: a newline inside a message (from an exception's text) is shown as \\n."""
    print(printable(text), file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="archspec", description="Compile neural-network architecture specs.")
    parser.add_argument(
        "--no-plugins",
        action="store_true",
        help=f"load no third-party plugin (also: {NO_PLUGINS_VARIABLE}=1 in the environment)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def spec_command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("spec", help="spec file, or the name of a spec in ./specs")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a parameter")
        p.add_argument("--variant", help="a row of the family's variants table (instead of the thin spec's)")
        p.add_argument(
            "--limit",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help=f"raise a limit (docs/limits.md): {', '.join(Limits.names())}",
        )
        return p

    spec_command("validate", "check a spec; print every error as file:line:col: code: message")
    summary = spec_command("summary", "per-layer table of output shapes, parameters and MACs")
    summary.add_argument("--json", action="store_true", help="one JSON object on stdout")
    summary.add_argument("--optimize", action="store_true", help="count the inference-optimized graph")
    summary.add_argument(
        "--verbose", action="store_true", help="also show how each layer's tensors are initialised (init:)"
    )
    build = spec_command("build", "compile a spec with a backend and write the artifact")
    build.add_argument("-o", "--output", help="output file (default: <name><backend suffix>, e.g. vgg16.pt2)")
    build.add_argument("--backend", default="torch")
    build.add_argument("--seed", type=_seed, default=0, help="weight initialisation seed (0 to 2**64-1)")
    build.add_argument("--weights", help="initial weights: a reference state dict (.safetensors, .pt, .pth)")
    build.add_argument(
        "--save-weights",
        action="store_true",
        help="also write the weights as <output>.safetensors (backends that write source: torch-source)",
    )
    build.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a backend setting, e.g. --option precision=fp16 (archspec check --backend NAME lists them)",
    )
    convert = spec_command(
        "convert-weights", "write a reference checkpoint's tensors under the spec's names (.safetensors)"
    )
    convert.add_argument("weights", help="the reference state dict (.safetensors, .pt, .pth)")
    convert.add_argument("-o", "--output", help="output file (default: <name>.safetensors)")
    check = spec_command("check", "per-layer report of what a backend compiles, falls back on, or cannot compile")
    check.add_argument("--backend", default="torch")
    build.add_argument(
        "--optimize",
        action="store_true",
        help="inference build: fold batch norm into convs, drop dropout and drop-path",
    )
    bench = spec_command("bench", "time the built model (and its torchvision/timm reference with --vs)")
    bench.add_argument("--backend", default="torch", help="backend whose artifact is timed (default: torch, eager)")
    bench.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    bench.add_argument(
        "--dtype",
        default="fp32",
        choices=["fp32", "bf16", "fp16"],
        help="inference: weights and input in this dtype; --train: autocast to it",
    )
    bench.add_argument("--batch", type=int, default=8)
    bench.add_argument("--train", action="store_true", help="time forward + backward + SGD step")
    bench.add_argument("--vs", metavar="REF", help="also time the reference model (torchvision or timm), same weights")
    bench.add_argument("--compile", action="store_true", help="torch.compile (default mode) both sides")
    bench.add_argument("--channels-last", action="store_true", help="NHWC module and input, both sides")
    bench.add_argument(
        "--optimize", action="store_true", help="time the inference-optimized build (archspec build --optimize)"
    )
    bench.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    bench.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    bench.add_argument("--iters", type=int, default=10, help="timed steps (per model)")
    bench.add_argument("--seed", type=_seed, default=0)
    bench.add_argument("--json", action="store_true", help="one JSON object on stdout")
    lister = sub.add_parser("list", help="specs, ops and backends, with the plugin providing each")
    lister.add_argument("--specs", default=str(SPECS_DIR), help="folder of specs to list")
    sub.add_parser("schema", help="print the spec format as JSON Schema")
    explain = sub.add_parser("explain", help="what an error code means, or an op's arguments")
    explain.add_argument("code", help="an error code (AS501) or an op name (conv2d)")
    _view_parsers(sub, spec_command)
    _training_parsers(sub)
    return parser


VIEWS = frozenset({"graph", "card", "diff", "fingerprint", "completion"})


def _view_parsers(sub: argparse._SubParsersAction, spec_command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """archspec graph, card, diff, fingerprint, completion (archspec.views; docs/views.md)."""
    from archspec.views.graph import DEFAULT_DEPTH, FORMATS

    graph = spec_command("graph", "draw the graph with Graphviz: blocks as clusters, repeats collapsed")
    graph.add_argument(
        "-o", "--output", help=f"output file; its suffix picks the format ({', '.join(FORMATS)}); default <name>.svg"
    )
    card = spec_command(
        "card", "one self-contained HTML page: graph, per-stage chart, layer table, expect: status, source"
    )
    card.add_argument("-o", "--output", help="output file (default <name>.html)")
    for p in (graph, card):
        p.add_argument(
            "--depth",
            type=int,
            default=DEFAULT_DEPTH,
            help=f"nesting levels drawn as clusters; deeper blocks and repeats are one box (default {DEFAULT_DEPTH})",
        )
        p.add_argument(
            "--no-collapse", action="store_true", help="draw every copy of a repeat, not one copy and a ×N box"
        )
    diff = sub.add_parser("diff", help="layers added, removed and changed between two specs; params/MACs per stage")
    diff.add_argument("a", help="spec file, or the name of a spec in ./specs")
    diff.add_argument("b", help="spec file, or the name of a spec in ./specs")
    diff.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a parameter of both")
    diff.add_argument(
        "--limit", action="append", default=[], metavar="NAME=VALUE", help="raise a limit (docs/limits.md)"
    )
    diff.add_argument("--json", action="store_true", help="one JSON object on stdout")
    fingerprint = spec_command(
        "fingerprint", "canonical SHA-256 of the lowered network (names and formatting left out)"
    )
    fingerprint.add_argument("--json", action="store_true", help="one JSON object on stdout")
    completion = sub.add_parser("completion", help="print a shell completion script (bash or zsh)")
    completion.add_argument("shell", choices=["bash", "zsh"])


def _view(args: argparse.Namespace, registry: Registry) -> int:
    """Run one of the view commands: compile, hand the IR to archspec.views, write or print the result."""
    from archspec.backends.artifacts import output_path, write_bytes_atomically
    from archspec.views import card, diff, fingerprint, graph

    if args.command == "completion":
        try:
            import shtab
        except ImportError:
            raise ArchspecError("AS934", "shell completion needs shtab: pip install 'archspec[views]'") from None
        _out(shtab.complete(_parser(), shell=args.shell))
        return 0
    limits = _limits(args.limit)
    overrides = _overrides(args.set)
    if args.command == "diff":
        a, b = _spec_path(args.a), _spec_path(args.b)
        ca = pipeline.compile_spec(a, overrides, registry, limits=limits)
        cb = pipeline.compile_spec(b, overrides, registry, limits=limits)
        result = diff.diff(ca.graph, ca.costs, cb.graph, cb.costs, (ca.resolved.name, cb.resolved.name))
        _out(json.dumps(result.to_json()) if args.json else diff.text(result))
        return 0
    path = _spec_path(args.spec)
    if args.command == "fingerprint":
        compiled = pipeline.compile_spec(path, overrides, registry, args.variant, limits)
        digest = fingerprint.fingerprint(compiled.graph)
        _out(
            json.dumps(
                {"name": compiled.resolved.name, "spec": path, "fingerprint": digest, "format": fingerprint.FORMAT}
            )
            if args.json
            else f"{digest}  {path}"
        )
        return 0
    if args.depth < 0:
        raise ArchspecError("AS806", f"--depth {args.depth}: give a whole number >= 0")
    fmt = graph.format_of(args.output) if args.command == "graph" and args.output else "svg"
    compiled = pipeline.compile_spec(path, overrides, registry, args.variant, limits, expect=args.command != "card")
    if args.command == "graph":
        out = output_path(args.output, compiled.graph.name, ".svg")
        data = graph.render(
            graph.to_dot(compiled.graph, compiled.costs, registry, args.depth, not args.no_collapse), fmt
        )
    else:
        out = output_path(args.output, compiled.graph.name, ".html")
        page, warnings = card.render_card(path, compiled, registry, args.depth, not args.no_collapse)
        for warning in warnings:
            _err(f"warning: {warning}")
        data = page.encode()
    try:
        write_bytes_atomically(out, data)
    except OSError as exc:
        raise ArchspecError("AS804", f"cannot write {out}: {exc.strerror or exc}") from None
    _out(f"wrote {out}")
    return 0


def _training_flags(p: argparse.ArgumentParser) -> None:
    """The options of train and compare (archspec.train.TrainOptions; docs/training.md)."""
    p.add_argument(
        "--data",
        required=True,
        help="digits, cifar10[:PATH], cifar100[:PATH], mnist[:PATH], "
        "fashion-mnist[:PATH], folder:PATH, a dataset folder, or text:PATH (a language model on a text's bytes)",
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a spec parameter")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64, help="global batch (split over --nproc processes)")
    p.add_argument("--lr", type=float, help="learning rate (default: sgd 0.05, adamw 0.001)")
    p.add_argument("--weight-decay", type=float, help="(default: sgd 5e-4, adamw 0.05; not on biases and norms)")
    p.add_argument("--optimizer", default="sgd", help="sgd (momentum 0.9) or adamw")
    p.add_argument("--schedule", default="cosine", help="cosine, step (x0.1 at 1/2 and 3/4) or none")
    p.add_argument("--warmup-epochs", type=float, default=0.0, help="linear warm-up of the learning rate (default 0)")
    p.add_argument("--label-smoothing", type=float, default=0.0, help="of the training loss, e.g. 0.1 (default 0)")
    p.add_argument(
        "--augment",
        default="",
        metavar="LIST",
        help="comma-separated: hflip, vflip, transpose, grayscale, brightness=F, crop[=PAD]",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    p.add_argument("--precision", default="fp32", help="fp32 or bf16 (autocast)")
    p.add_argument("--compile", action="store_true", help="torch.compile the module")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format for the module and batches")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--seed", type=_seed, default=0, help="weights, data order, augmentation and dropout")
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="processes on this machine, through torch's elastic launcher "
        "(at most the CPU cores, or the GPUs with --device cuda); more machines: torchrun",
    )
    p.add_argument(
        "--strategy",
        default="ddp",
        help="with --nproc > 1: ddp (weights on every process) or fsdp "
        "(weights, gradients and optimizer state sharded: FSDP2)",
    )
    p.add_argument("--threads", type=int, help="CPU threads per process")
    _data_flags(p)


def _data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="image-decoding worker processes for an image folder "
        "(default: one per core, at most 8; 0 decodes in the training process)",
    )
    p.add_argument(
        "--bad-images",
        default="fail",
        choices=("fail", "skip"),
        help="an unreadable image in a folder: fail (default, naming it) or skip it and count",
    )


def _training_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    train = sub.add_parser("train", help="train a spec on a dataset; checkpoints in --out (default runs/<name>)")
    train.add_argument("spec", help="spec file, or the name of a spec in ./specs")
    train.add_argument("--variant", help="a row of the family's variants table")
    train.add_argument("--out", help="run folder (default: runs/<spec name>)")
    _training_flags(train)
    ev = sub.add_parser("eval", help="loss, top-1/top-5 accuracy and confusion matrix of trained weights")
    ev.add_argument("spec", help="spec file, or the name of a spec in ./specs")
    ev.add_argument("--weights", required=True, help="a .safetensors written by archspec train, or its run folder")
    ev.add_argument("--data", required=True, help="the dataset (as for train)")
    ev.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a spec parameter")
    ev.add_argument("--variant", help="a row of the family's variants table")
    ev.add_argument("--split", default="test", help="test (default) or train")
    ev.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    ev.add_argument("--precision", default="fp32", help="fp32 or bf16 (autocast)")
    _data_flags(ev)
    ev.add_argument(
        "--json",
        action="store_true",
        help="one JSON object: loss, top1, top5 (fractions), confusion (a text: loss in nats per token, tokens)",
    )
    compare = sub.add_parser("compare", help="train several specs or variants; results.md, results.csv, PNG curves")
    compare.add_argument(
        "entries",
        nargs="+",
        metavar="SPEC[:k=v,...]",
        help="e.g. seed_cnn seed_cnn_bn seed_cnn:dropout=true seed_cnn:augment=hflip+crop",
    )
    compare.add_argument("--out", default="runs/compare", help="folder for the table, the curves and each entry's run")
    _training_flags(compare)


def _training(args: argparse.Namespace) -> int:
    """train, eval, compare: arguments -> archspec.train (imported here: torch loads only for these)."""
    from archspec.train import TrainOptions, train

    with paused():  # torch: a third of a million objects that live as long as the process
        import archspec.train.loop  # noqa: F401

    if args.command == "eval":
        from archspec.train.loop import evaluate_file
        from archspec.train.report import eval_text

        result = evaluate_file(
            _spec_path(args.spec),
            args.weights,
            args.data,
            _overrides(args.set),
            args.variant,
            args.device,
            args.split,
            args.precision,
            args.workers,
            args.bad_images,
        )
        _out(json.dumps(result.to_json()) if args.json else eval_text(result))
        return 0
    base = TrainOptions(
        spec="",
        data=args.data,
        overrides=_overrides(args.set),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        optimizer=args.optimizer,
        schedule=args.schedule,
        warmup_epochs=args.warmup_epochs,
        label_smoothing=args.label_smoothing,
        augment=args.augment,
        device=args.device,
        precision=args.precision,
        compile=args.compile,
        channels_last=args.channels_last,
        out=args.out,
        resume=args.resume,
        seed=args.seed,
        nproc=args.nproc,
        strategy=args.strategy,
        threads=args.threads,
        workers=args.workers,
        bad_images=args.bad_images,
    )
    if args.command == "compare":
        from archspec.train.compare import compare, parse_entry
        from archspec.train.report import markdown

        entries = [parse_entry(text, _spec_path) for text in args.entries]
        results = compare(entries, base, Path(args.out))
        _out(markdown(results))
        _out(f"wrote {Path(args.out) / 'results.md'}, results.csv, loss.png, accuracy.png")
        return 0
    from archspec.train.report import run_line

    result = train(base.with_(spec=_spec_path(args.spec), variant=args.variant))
    if result is not None:  # None: a process of torchrun's other than rank 0
        _out(run_line(result))
    return 0


def _schema(args: argparse.Namespace, registry: Registry) -> int:
    from archspec.schema import json_schema

    _out(json.dumps(json_schema(registry), indent=2))
    return 0


def _explain(args: argparse.Namespace, registry: Registry) -> int:
    if args.code in registry.ops:
        _out(describe_op(registry.op(args.code), registry.ops[args.code].provider))
        return 0
    blocks, _ = standard_blocks(registry)
    if args.code in blocks:
        _out(describe_block(blocks[args.code]))
        return 0
    code = args.code.upper()
    if code not in CODES:
        known = [*registry.ops, *blocks]
        _err(
            f"{args.code!r} is neither an error code (AS101 ... {max(CODES)}), an op nor a block of archspec's "
            f"libraries.{did_you_mean(args.code, known)}"
        )
        return 2
    _out(f"{code}: {CODES[code]}")
    return 0


def _spec_inputs(args: argparse.Namespace, registry: Registry) -> tuple[str, dict[str, object], Limits]:
    """What every spec command starts from: the spec's path, its --set overrides and the --limit limits
    (a named --backend is checked first, so a typo is a usage error before anything compiles)."""
    limits = _limits(args.limit)
    backend = getattr(args, "backend", None)
    if backend is not None and backend not in registry.backends and not registry.conflict("backend", backend):
        raise ArchspecError(
            "AS806",
            f"unknown backend {backend!r}.{did_you_mean(backend, registry.backends)} "
            f"Known: {', '.join(sorted(registry.backends))}",
        )
    return _spec_path(args.spec), _overrides(args.set), limits


def _validate(args: argparse.Namespace, registry: Registry) -> int:
    path, overrides, limits = _spec_inputs(args, registry)
    compiled = pipeline.compile_spec(path, overrides, registry, args.variant, limits)
    c = compiled.costs
    _out(f"ok: {path}: {compiled.graph.name}, {c.params:,} params, {human(c.macs)} MACs, output {list(c.output)}")
    return 0


def _summary(args: argparse.Namespace, registry: Registry) -> int:
    path, overrides, limits = _spec_inputs(args, registry)
    # The table is printed even when expect: fails: that is when it is needed. Then the mismatch, exit 1.
    compiled = pipeline.compile_spec(
        path, overrides, registry, args.variant, limits, optimize=args.optimize, expect=False
    )
    costs = compiled.costs
    _out(json.dumps(costs.to_json()) if args.json else table(costs, compiled.graph if args.verbose else None))
    pipeline.check_compiled_expect(compiled, overrides, registry)
    return 0


def _build(args: argparse.Namespace, registry: Registry) -> int:
    path, overrides, limits = _spec_inputs(args, registry)
    out = pipeline.build_file(
        path,
        args.output,
        backend=args.backend,
        seed=args.seed,
        weights=args.weights,
        overrides=overrides,
        variant=args.variant,
        registry=registry,
        limits=limits,
        optimize=args.optimize,
        save_weights=args.save_weights,
        settings=_settings(args.option),
        report=_out,
    )
    _out(f"wrote {out}")
    return 0


def _convert_weights(args: argparse.Namespace, registry: Registry) -> int:
    path, overrides, limits = _spec_inputs(args, registry)
    out = pipeline.convert_weights(
        path,
        args.weights,
        args.output,
        overrides=overrides,
        variant=args.variant,
        registry=registry,
        limits=limits,
        report=_out,
    )
    _out(f"wrote {out}")
    return 0


def _check(args: argparse.Namespace, registry: Registry) -> int:
    path, overrides, limits = _spec_inputs(args, registry)
    layers = pipeline.coverage(
        pipeline.compile_spec(path, overrides, registry, args.variant, limits), args.backend, registry
    )
    _out(format_report(layers, args.backend))
    return 1 if any(s.level == "unsupported" for s in layers) else 0


def _bench(args: argparse.Namespace, registry: Registry) -> int:
    path, overrides, limits = _spec_inputs(args, registry)
    from archspec.bench import BenchOptions, bench

    options = BenchOptions(
        backend=args.backend,
        device=args.device,
        dtype=args.dtype,
        batch=args.batch,
        train=args.train,
        vs=args.vs,
        compile=args.compile,
        channels_last=args.channels_last,
        optimize=args.optimize,
        threads=args.threads,
        warmup=args.warmup,
        iters=args.iters,
        seed=args.seed,
    )
    report = bench(path, options, overrides, args.variant, registry)
    _out(json.dumps(report.to_json()) if args.json else report.text())
    return 0


Handler = Callable[[argparse.Namespace, Registry], int]


def _needs_torch(extra: str, handler: Handler) -> Handler:
    """`handler` imports torch: without it installed, say which extra brings it (AS810, exit 1), not a traceback."""

    def run(args: argparse.Namespace, registry: Registry) -> int:
        require(("torch",), f"archspec {args.command}", extra)
        return handler(args, registry)

    return run


# Each subcommand's handler. The commands whose backend is named (build, check) need torch only for the
# torch-based backends: the registry reports a backend's missing package the same way when it loads it.
COMMANDS: dict[str, Handler] = {
    **dict.fromkeys(("train", "eval", "compare"), _needs_torch("train", lambda args, _: _training(args))),
    "list": lambda args, registry: _list(Path(args.specs), registry),
    "schema": _schema,
    "explain": _explain,
    **dict.fromkeys(sorted(VIEWS), _view),
    "validate": _validate,
    "summary": _summary,
    "build": _build,
    "convert-weights": _needs_torch("torch", _convert_weights),
    "check": _check,
    "bench": _needs_torch("torch", _bench),
}


def _run(args: argparse.Namespace, registry: Registry) -> int:
    return COMMANDS[args.command](args, registry)


def _settings(items: Sequence[str]) -> dict[str, str]:
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ArchspecError("AS806", f"--option {item!r}: write KEY=VALUE, e.g. --option precision=fp16")
        settings[key.strip()] = value.strip()
    return settings


def _list(specs: Path, registry: Registry) -> int:
    _out(f"specs in {specs}/:")
    for path in sorted(specs.glob("*.yaml")):
        try:
            resolved = resolve_file(path, registry)
            detail = resolved.description.strip().splitlines()[0] if resolved.description.strip() else ""
            _out(f"  {path.stem:<22} {printable(detail)}")
        except SpecErrors as exc:
            _out(f"  {path.stem:<22} (invalid: {exc.total} error(s); run archspec validate {path})")
    _out("ops:")
    for name in registry.op_names():
        _out(f"  {name:<22} {registry.ops[name].provider}")
    _out("blocks (archspec's libraries: imports: [archspec:NAME]; archspec explain BLOCK):")
    blocks, broken = standard_blocks(registry)
    for name, ref in sorted(blocks.items()):
        doc = " ".join(ref.block.doc.split())
        _out(f"  {name:<22} {ref.source:<18} {printable(doc if len(doc) <= 72 else doc[:71] + '…')}")
    for library, problem in broken.items():
        _out(f"  ({library} is unavailable here: {printable(str(problem.errors[0]))})")
    _out("backends:")
    for name, provided in sorted(registry.backends.items()):
        _out(f"  {name:<22} {provided.provider}")
    return 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is so that cleanup (`finally`) runs as for Ctrl-C."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated()


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (main() called from a library's worker): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _silence_stdout() -> None:
    """Point stdout at devnull so the interpreter's final flush does not fail again."""
    with contextlib.suppress(OSError, ValueError):  # stdout is not a real file (captured by a test harness)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _report(exc: SpecErrors) -> None:
    for error in exc.errors:
        _err(str(error))
    n = len(exc.errors)
    more = f" (stopped at the limit of {n}: fix these first)" if exc.stopped else ""
    _err(f"{n} error{'s' if n != 1 else ''}{more}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    registry: Registry | None = None
    shown = 0
    try:
        with _sigterm_unwinds():
            registry = default_registry(plugins=False) if args.no_plugins else default_registry()
            for problem in registry.problems:
                _err(f"warning: {problem}")
            shown = len(registry.problems)
            code = _run(args, registry)
            sys.stdout.flush()  # here, where a full disk (> /dev/full) can still be reported
            return code
    except SpecErrors as exc:
        _report(exc)
        return 2 if all(e.location == COMMAND_LINE for e in exc.errors) else 1
    except ArchspecError as exc:
        _err(f"error: {exc}")
        return 2 if exc.code in USAGE_CODES else 1
    except BrokenPipeError:  # `archspec summary ... | head` closed our stdout: not an error
        _silence_stdout()
        return 0
    except OSError as exc:  # writing our own output failed (a full disk, a closed terminal)
        _silence_stdout()
        _err(f"error: cannot write the output: {exc.strerror or exc}")
        return 1
    except KeyboardInterrupt as exc:
        _err("interrupted (SIGTERM)" if isinstance(exc, _Terminated) else "interrupted")
        return 130
    finally:
        if registry is not None:
            for problem in registry.problems[shown:]:
                _err(f"warning: {problem}")


def command() -> int:
    """The `archspec` executable and `python -m archspec`: main(), then the process's objects are left to the
    operating system at exit (archspec.collector: 0.65 s saved wherever torch was imported). main() alone
    is what tests and embedding programs call, in a process that goes on."""
    code = main()
    freeze_for_exit()
    return code


if __name__ == "__main__":
    sys.exit(command())
