"""Mutation fuzzing of specs: does every input end in a result or in our own located errors, quickly?

Each case takes a seed spec (a thin spec of the zoo, or a family spec with one of its variants), mutates
its text or its data, and runs validate + summary in process. A case passes when it compiles, or when it
raises `SpecErrors` whose every error has a code from `archspec.errors.CODES` and a file:line:column;
anything else (an exception of ours or of a library, a case slower than the time bound) is a finding.
A finding is shrunk line by line to a small spec that still fails the same way.

    from archspec.testing.fuzz import Fuzzer
    report = Fuzzer(seeds=Path("specs"), workdir=tmp_path, rng_seed=0).run(cases=10_000)
    assert not report.findings

Mutations are of two kinds: textual (a line deleted, duplicated or swapped, a character flipped,
hostile text inserted, the file cut short) and structural (a value in the loaded data replaced by a
hostile value, a key deleted or added, a layer duplicated or its op or inputs changed), after which the
data is written back as YAML. Both kinds run on the thin spec or on the family spec it uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
import json
import marshal
import os
from pathlib import Path
import random
import resource
import shutil
import tempfile
import time
from typing import Any

import yaml

from archspec.errors import CODES, SpecErrors
from archspec.pipeline import compile_spec
from archspec.registry import Registry, default_registry
from archspec.report import table

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: mutating must cost less than compiling
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# Values a hostile or careless author writes; each is tried in place of any value of a spec.
HOSTILE_VALUES: tuple[Any, ...] = (
    0,
    -1,
    1,
    2,
    3,
    2**31,
    2**63,
    -(2**63),
    10**100,
    0.5,
    -0.0,
    1e308,
    1e-308,
    True,
    False,
    None,
    "",
    " ",
    "x" * 300,
    [],
    [0],
    [1, 2, 3],
    [[[[1]]]],
    [-1, -1],
    {},
    {"op": "relu"},
    {"a": {"b": {"c": 1}}},
    "${1/0}",
    "${2**64}",
    "${9**9**9}",
    "${'a'*10**9}",
    "${[0]*10**6}",
    "${range(10**9)}",
    "${__import__('os')}",
    "${().__class__}",
    "${lambda: 1}",
    "${[x for x in range(9)]}",
    "${f'{1}'}",
    "${[0 for i in range(10**4) for j in range(10**4) if False]}",
    "${exp(999)}",
    "${[x.y for x in [1]]}",
    "${log(0)}",
    "${in_shape}",
    "${in_channels * 0}",
    "${-in_channels}",
    "${x}",
    "${",
    "$",
    "$$",
    "${}",
    "${1 if}",
    "${max()}",
    "${min([])}",
    "${len(1)}",
    "${sqrt(-1)}",
    "${round(1, 10**9)}",
    "${(1,)*65}",
    "../../etc/passwd",
    "/dev/zero",
    "a/b/c",
    "name.with.dots",
    "training",
    "graph",
    "forward",
    "self",
    "class",
    "\u202etxt.exe",
    "\x1b[31mred",
    "line\nbreak",
    "nul\x00byte",
    "\ufeffbom",
    "ｆｕｌｌ",
    "é",
    "\U0001f600",
    "same",
    "valid",
    "relu",
    "conv2d",
    "input",
    "output",
    "i",
    "-1",
    "1e9",
    "nan",
    "inf",
    "yes",
)
# Text inserted into the YAML source: syntax and the constructs specs refuse.
HOSTILE_TEXT: tuple[str, ...] = (
    "{",
    "}",
    "[",
    "]",
    ":",
    "- ",
    "&a ",
    "*a",
    "<<: ",
    "!!python/object/apply:os.system ['true'] ",
    "!tag ",
    "? ",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "\t",
    "'",
    '"',
    "\\",
    "#",
    "|",
    ">",
    "\x00",
    "\x07",
    "\ufeff",
    "\u202e",
    "\ud800",
    "${",
    "}$",
    "$$",
    "9" * 400,
    ".nan",
    "-.inf",
    "0x1F",
    "0o17",
    "1_000",
    "~",
    "null",
    "yes",
    "\n  ",
    "\n" + " " * 70,
    "[" * 100,
    "{a: " * 80,
    "a: &x [*x]\n",
)
OP_NAMES = (
    "conv2d",
    "linear",
    "relu",
    "add",
    "concat",
    "mean",
    "flatten",
    "reshape",
    "batchnorm",
    "maxpool2d",
    "select",
    "no_such_op",
    "input",
    "stage",
    "block",
)


@dataclass(frozen=True)
class Seed:
    """A spec to mutate: `path` (a thin spec, or a family spec compiled with `variant`)."""

    path: Path
    variant: str | None = None

    @property
    def label(self) -> str:
        return self.path.name + (f"[{self.variant}]" if self.variant else "")


@dataclass(frozen=True)
class Finding:
    seed: str
    mutation: str
    problem: str  # the exception, or why the errors are not acceptable
    text: str  # the (shrunk) spec text that shows it


@dataclass
class Report:
    cases: int = 0
    compiled: int = 0  # cases that compiled to a network
    located_errors: int = 0  # errors reported, every one located and coded
    rejected: int = 0  # cases that ended in SpecErrors
    tracebacks: int = 0  # cases that ended in any other exception
    slowest: float = 0.0  # CPU seconds of the slowest case
    slowest_case: str = ""
    cpu_seconds: float = 0.0  # of all cases together
    peak_rss_mb: float = 0.0
    seeds: set[str] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)

    def merge(self, other: Report) -> None:
        self.cases += other.cases
        self.compiled += other.compiled
        self.located_errors += other.located_errors
        self.rejected += other.rejected
        self.tracebacks += other.tracebacks
        self.cpu_seconds += other.cpu_seconds
        if other.slowest > self.slowest:
            self.slowest, self.slowest_case = other.slowest, other.slowest_case
        self.peak_rss_mb = max(self.peak_rss_mb, other.peak_rss_mb)
        self.seeds |= other.seeds
        self.findings += other.findings

    def summary(self) -> str:
        return (
            f"{self.cases:,} mutated specs from {len(self.seeds)} seeds: {self.compiled:,} compiled, "
            f"{self.rejected:,} rejected with {self.located_errors:,} located errors, {self.tracebacks} tracebacks, "
            f"{len(self.findings)} findings; {self.cpu_seconds:.0f} CPU s in all, slowest case {self.slowest * 1000:.0f} ms "
            f"of CPU ({self.slowest_case}); "
            f"peak RSS {self.peak_rss_mb:.0f} MB"
        )


def peak_rss_mb() -> float:
    """This process's peak resident memory. /proc's VmHWM starts afresh at exec; getrusage's ru_maxrss
    would also count the memory of the parent a spawned worker was forked from."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def zoo_seeds(specs: Path) -> list[Seed]:
    """Every thin spec in `specs`, and every family spec under it with each of its variants."""
    seeds = [Seed(p) for p in sorted(specs.glob("*.yaml"))]
    for family in sorted(specs.glob("families/*.yaml")):
        data = yaml.load(family.read_text(), Loader=_Loader)
        variants = list((data or {}).get("variants") or {}) or [None]
        seeds += [Seed(family, v) for v in variants]
    return seeds


def scratch_folder() -> Path:
    """A private folder in memory where the OS offers one (/dev/shm): each case writes a file, and a
    disk-backed /tmp costs milliseconds per write, more than compiling a small spec."""
    shm = Path("/dev/shm")
    base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="archspec-fuzz-", dir=base))


class Fuzzer:
    """Mutates copies of `seeds` inside `workdir` (a copy of the spec tree, so `use:` still resolves).
    Call `close()` (or use it as a context manager) to remove the copy."""

    def __init__(
        self,
        seeds: Path,
        workdir: Path | None = None,
        rng_seed: int = 0,
        time_bound: float = 2.0,
        registry: Registry | None = None,
    ):
        self.workdir = workdir if workdir is not None else scratch_folder()
        self.root = self.workdir / "specs"
        if self.root.exists():
            shutil.rmtree(self.root)
        shutil.copytree(seeds, self.root, ignore=shutil.ignore_patterns("*.md"))
        self.seeds = zoo_seeds(self.root)
        self.rng = random.Random(rng_seed)
        self.time_bound = time_bound
        self.registry = registry or default_registry()
        self.texts = {path: path.read_text() for path in {seed.path for seed in self.seeds}}
        self.data = {path: marshal.dumps(yaml.load(text, Loader=_Loader)) for path, text in self.texts.items()}

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Fuzzer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one case ------------------------------------------------------------------------------
    def check(self, path: Path, variant: str | None) -> tuple[str, int, str | None]:
        """Compile `path`: ("compiled", 0, None), ("rejected", n_errors, problem-or-None) or ("crashed", 0, problem)."""
        try:
            compiled = compile_spec(path, None, self.registry, variant)
            table(compiled.costs)
            compiled.costs.to_json()
            return "compiled", 0, None
        except SpecErrors as exc:
            for error in exc.errors:
                loc = error.location
                if error.code not in CODES:
                    return "rejected", len(exc.errors), f"error code {error.code!r} is not documented: {error}"
                if loc is None or loc.line < 1 or loc.column < 1 or not loc.file:
                    return "rejected", len(exc.errors), f"error without a file:line:column: {error}"
                str(error).encode("utf-8")  # printable as UTF-8 (no lone surrogate)
            if not exc.errors:
                return "rejected", 0, "SpecErrors with no error in it"
            return "rejected", len(exc.errors), None
        except RecursionError:
            return "crashed", 0, "RecursionError"
        except Exception as exc:  # noqa: BLE001 - anything else is exactly what fuzzing looks for
            return "crashed", 0, f"{type(exc).__name__}: {exc}"

    def run_case(self, seed: Seed, report: Report) -> None:
        target, text, mutation = self.mutate(seed)
        path = self._write(target, text)
        start = time.process_time()  # compute, not wall time: the bound must not depend on what else runs
        outcome, n_errors, problem = self.check(path, seed.variant if target == seed.path else None)
        elapsed = time.process_time() - start
        report.cases += 1
        report.cpu_seconds += elapsed
        report.seeds.add(seed.label)
        if elapsed > report.slowest:
            report.slowest, report.slowest_case = elapsed, f"{seed.label}: {mutation}"
        if outcome == "compiled":
            report.compiled += 1
        elif outcome == "rejected":
            report.rejected += 1
            report.located_errors += n_errors
        else:
            report.tracebacks += 1
        if problem is None and elapsed > self.time_bound:
            problem = f"took {elapsed:.2f} s, above the bound of {self.time_bound} s"
        if problem is not None:
            shrunk = self.shrink(target, text, seed.variant if target == seed.path else None, problem)
            report.findings.append(Finding(seed.label, mutation, problem, shrunk))
        self._restore(target)

    def shrink(self, target: Path, text: str, variant: str | None, problem: str) -> str:
        return _shrink(self, target, text, variant, problem)

    def run(self, cases: int, on_progress: Callable[[Report], None] | None = None) -> Report:
        report = Report()
        order = self._round_robin()
        for k in range(cases):
            self.run_case(next(order), report)
            if on_progress is not None and k % 1000 == 999:
                on_progress(report)
        report.peak_rss_mb = peak_rss_mb()
        return report

    def _round_robin(self) -> Iterator[Seed]:
        while True:  # every seed once per round, in a shuffled order
            seeds = list(self.seeds)
            self.rng.shuffle(seeds)
            yield from seeds

    # -- files -----------------------------------------------------------------------------------
    def _write(self, target: Path, text: str) -> Path:
        with open(target, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(text)
        return target

    def _restore(self, target: Path) -> None:
        target.write_text(self.texts[target])

    # -- mutations ---------------------------------------------------------------------------------
    def mutate(self, seed: Seed) -> tuple[Path, str, str]:
        """(file to replace, its new text, what was done): the seed itself or the family it uses."""
        target = seed.path
        if seed.variant is None and self.rng.random() < 0.5:
            use = marshal.loads(self.data[seed.path]).get("use")
            family = (seed.path.parent / use) if isinstance(use, str) else None
            if family is not None and family in self.texts:
                target = family
        text = self.texts[target]
        for _ in range(5):  # a mutation that changes nothing is retried
            kind = self.rng.random()
            if kind < 0.45:
                new, what = self._textual(text)
            else:
                new, what = self._structural(target)
            if new != text:
                return target, new, f"{target.name}: {what}"
        return target, text + "\nx: 1\n", f"{target.name}: unknown top-level key"

    def _textual(self, text: str) -> tuple[str, str]:
        rng = self.rng
        lines = text.split("\n")
        k = rng.randrange(len(lines))
        choice = rng.randrange(8)
        if choice == 0:
            del lines[k]
            return "\n".join(lines), f"deleted line {k + 1}"
        if choice == 1:
            lines.insert(k, lines[k])
            return "\n".join(lines), f"duplicated line {k + 1}"
        if choice == 2:
            j = rng.randrange(len(lines))
            lines[k], lines[j] = lines[j], lines[k]
            return "\n".join(lines), f"swapped lines {k + 1} and {j + 1}"
        if choice == 3:
            return text[: rng.randrange(len(text) + 1)], "cut short"
        pos = rng.randrange(len(text) + 1)
        if choice == 4 and text:
            pos = min(pos, len(text) - 1)
            return text[:pos] + chr(
                rng.choice([ord(text[pos]) ^ (1 << rng.randrange(7)), rng.randrange(32, 127)])
            ) + text[pos + 1 :], f"changed the character at offset {pos}"
        if choice == 5:
            digits = [i for i, c in enumerate(text) if c.isdigit()]
            if digits:
                pos = rng.choice(digits)
                number = rng.choice(["0", "-1", "99999999", "3.5", "1e400", "2147483648", "00", "-0"])
                return text[:pos] + number + text[pos + 1 :], f"replaced a digit at offset {pos} by {number}"
        snippet = rng.choice(HOSTILE_TEXT)
        return text[:pos] + snippet + text[pos:], f"inserted {snippet[:20]!r} at offset {pos}"

    def _structural(self, target: Path) -> tuple[str, str]:
        rng = self.rng
        text = self.texts[target]
        data = marshal.loads(self.data[target])  # a fresh copy of the parsed seed, at C speed
        slots = list(_slots(data, ()))
        if not slots:
            return text, "nothing to mutate"
        container, key, path = rng.choice(slots)
        choice = rng.randrange(10)
        if choice < 4:
            value = rng.choice(HOSTILE_VALUES)
            container[key] = value
            what = f"set {_show(path)} to {value!r:.40}"
        elif choice == 4 and isinstance(container, dict):
            del container[key]
            what = f"deleted {_show(path)}"
        elif choice == 5 and isinstance(container, dict):
            new_key = rng.choice(
                ["extra", "op", "name", "from", "repeat", "if", "args", "use", "variant", "", "_x", "ｎ"]
            )
            container[new_key] = rng.choice(HOSTILE_VALUES)
            what = f"added key {new_key!r} beside {_show(path)}"
        elif choice == 6 and isinstance(container, list):
            container.insert(key, container[key])
            what = f"duplicated {_show(path)}"
        elif choice == 7 and isinstance(container, dict) and "op" in container:
            container["op"] = rng.choice(OP_NAMES)
            what = f"op of {_show(path[:-1])} -> {container['op']}"
        elif choice == 8 and isinstance(container, dict):
            container["repeat"] = rng.choice([0, 1, 7, 10**4, 10**5, -1, "${10**6}", True])
            what = f"repeat of {_show(path[:-1])} -> {container['repeat']!r}"
        else:
            container[key] = rng.choice(["input", ["input"], [], ["input", "input"], "nowhere"])
            what = f"{_show(path)} -> {container[key]!r}"
        if rng.random() < 0.8:  # JSON is YAML (flow style), and json writes it 20 times faster than yaml
            return json.dumps(data, indent=1, ensure_ascii=False), what
        try:
            return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=10**6), what
        except yaml.YAMLError:
            return text, "not representable"


def _slots(data: Any, path: tuple[Any, ...]) -> Iterator[tuple[Any, Any, tuple[Any, ...]]]:
    if isinstance(data, dict):
        for key in list(data):
            yield data, key, (*path, key)
            yield from _slots(data[key], (*path, key))
    elif isinstance(data, list):
        for i in range(len(data)):
            yield data, i, (*path, i)
            yield from _slots(data[i], (*path, i))


def _show(path: Sequence[Any]) -> str:
    return ".".join(map(str, path)) or "<root>"


# -- shrinking -------------------------------------------------------------------------------------
def shrink_lines(text: str, still_fails: Callable[[str], bool], budget: int = 400) -> str:
    """Delete lines (then chunks of lines) while `still_fails` holds: a small regression spec."""
    lines = text.split("\n")
    size = max(1, len(lines) // 2)
    tries = 0
    while size >= 1 and tries < budget:
        k = 0
        changed = False
        while k < len(lines) and tries < budget:
            candidate = lines[:k] + lines[k + size :]
            tries += 1
            if candidate and still_fails("\n".join(candidate)):
                lines = candidate
                changed = True
            else:
                k += size
        if not changed:
            size //= 2
    return "\n".join(lines)


def _same_kind(problem: str) -> str:
    return problem.split(":")[0]


def _shrink(fuzzer: Fuzzer, target: Path, text: str, variant: str | None, problem: str) -> str:
    kind = _same_kind(problem)

    def still_fails(candidate: str) -> bool:
        fuzzer._write(target, candidate)
        start = time.process_time()
        _, _, found = fuzzer.check(target, variant)
        slow = time.process_time() - start > fuzzer.time_bound
        return (found is not None and _same_kind(found) == kind) or (slow and kind.startswith("took"))

    try:
        return shrink_lines(text, still_fails)
    finally:
        fuzzer._restore(target)


# -- several processes -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Shard:
    specs: Path
    rng_seed: int
    cases: int
    time_bound: float = 2.0
    memory_bytes: int = 2 * 1024**3


def run_shard(shard: Shard) -> Report:
    """One worker's share: its own scratch copy of the specs, its own seed, under a memory ceiling
    (an allocation past it is a MemoryError, which the case reports as a finding)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    ceiling = shard.memory_bytes if hard == resource.RLIM_INFINITY else min(shard.memory_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, hard))
    with Fuzzer(shard.specs, rng_seed=shard.rng_seed, time_bound=shard.time_bound) as fuzzer:
        return fuzzer.run(shard.cases)


def fuzz_in_processes(specs: Path, cases: int, workers: int, rng_seed: int = 0, time_bound: float = 2.0) -> Report:
    """`cases` mutated specs split over `workers` fresh interpreters (spawned: no state shared with the caller)."""
    import multiprocessing

    shards = [
        Shard(specs, rng_seed * 1000 + k, cases // workers + (k < cases % workers), time_bound) for k in range(workers)
    ]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        reports = pool.map(run_shard, shards)
    total = Report()
    for report in reports:
        total.merge(report)
    return total
