"""Errors as data.

Every problem with a spec is a `SpecError`: a stable code, a message that says what to do, the
file:line:column it points at, and the path of keys that leads there. Stages collect them and raise one
`SpecErrors` holding all, so a user sees every error of a file in one run.

Each code is documented once, in `CODES` (shown by `archspec explain CODE`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
import difflib
import functools
import heapq

from archspec.limits import DEFAULT

PathPart = str | int
Path = tuple[PathPart, ...]


@dataclass(frozen=True, order=True)
class Location:
    """A place in a source file; line and column count from 1."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class SpecError:
    code: str
    message: str
    location: Location | None = None
    path: Path = ()

    def __str__(self) -> str:
        where = str(self.location) if self.location else "<spec>"
        return f"{where}: {self.code}: {self.message}"

    def to_json(self) -> dict[str, object]:
        loc = self.location
        return {
            "code": self.code,
            "message": self.message,
            "file": loc.file if loc else None,
            "line": loc.line if loc else None,
            "column": loc.column if loc else None,
            "path": list(self.path),
        }


class SpecErrors(Exception):
    """One or more located spec errors, reported together: at most `limit` of them, in file order.
    `total` counts the errors found; `stopped` says a stage stopped looking at the limit (there may be more)."""

    def __init__(self, errors: Iterable[SpecError], limit: int = DEFAULT.errors, stopped: bool = False):
        found = list(errors)
        self.total = len(found)
        self.stopped = stopped or self.total > limit  # more errors may follow these
        self.errors: list[SpecError] = sorted(found, key=lambda e: (e.location or Location("", 0, 0), e.code))[:limit]
        super().__init__("\n".join(str(e) for e in self.errors))


class ArchspecError(Exception):
    """A failure that is not a spec error (bad weights file, missing backend, ...), with what to do."""

    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


# difflib's ratio is the costly part (tens of microseconds a pair): only the candidates sharing the most
# character pairs with the name (by Dice coefficient) go to it. Below this many candidates nothing is left out.
MAX_CLOSE_CHECKS = 40

# Suggestions left in the current run (None: no bound). Each costs up to a pass over the candidates, so a
# spec with thousands of unknown names among thousands of declared ones was quadratic (2,000 took 21 s);
# past the budget an error keeps its message, without the suggestion. Set by `suggestion_budget`.
_suggestions_left: ContextVar[int | None] = ContextVar("suggestions_left", default=None)


@contextmanager
def suggestion_budget(count: int) -> Iterator[None]:
    """Within this block, at most `count` did-you-mean suggestions are looked for (an enclosing, smaller
    budget still holds)."""
    outer = _suggestions_left.get()
    token = _suggestions_left.set(count if outer is None else min(outer, count))
    try:
        yield
    finally:
        _suggestions_left.reset(token)


@functools.lru_cache(maxsize=1 << 16)  # a spec's names are ranked again for each unknown name
def _pairs(text: str) -> frozenset[str]:
    return frozenset(text[k : k + 2] for k in range(len(text) - 1)) or frozenset((text,))


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ' Did you mean ...?' suffix for unknown names, or '' when nothing is close (or the run's
    suggestion budget is spent: `candidates` is then not even read)."""
    left = _suggestions_left.get()
    if left is not None:
        if left <= 0:
            return ""
        _suggestions_left.set(left - 1)
    # A ratio >= 0.6 needs lengths within a factor of two of each other, so nothing close is dropped by the
    # length test. Every candidate is ranked (a cap on how many are read would depend on the order of a set,
    # which changes with each process's hash seed, and drop the right name at random); the run's budget
    # bounds how many times this is done.
    lo, hi = len(name) / 2, len(name) * 2 + 1
    ordered = sorted({c for c in candidates if isinstance(c, str) and lo <= len(c) <= hi})
    if len(ordered) > MAX_CLOSE_CHECKS:
        mine = _pairs(name)

        def dice(candidate: str) -> float:  # shared pairs over all pairs: a longer name sharing as many ranks lower
            theirs = _pairs(candidate)
            return 2 * len(mine & theirs) / (len(mine) + len(theirs))

        ordered = heapq.nlargest(MAX_CLOSE_CHECKS, ordered, key=dice)
    close = difflib.get_close_matches(name, ordered, n=3, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"


def one_of(candidates: Sequence[str], limit: int = 12) -> str:
    names = sorted(candidates)
    shown = ", ".join(names[:limit])
    return shown + (", ..." if len(names) > limit else "")


# The stable codes. Ranges follow the pipeline: 1xx load, 2xx validate, 3xx expressions,
# 4xx lower, 5xx shapes and limits, 6xx expect, 7xx weights, 8xx plugins and backends, 9xx benchmarks.
CODES: dict[str, str] = {
    "AS101": "The spec file cannot be read (missing, a directory, or not UTF-8).",
    "AS102": "YAML syntax error.",
    "AS103": "YAML anchors and aliases are not allowed; write the value out or use a block.",
    "AS104": "A mapping has the same key twice.",
    "AS105": "NaN and infinity are not allowed as numbers.",
    "AS106": "yes/no/on/off are not booleans in a spec; write true or false (or quote the word).",
    "AS107": "The file is larger than the limit for spec files.",
    "AS108": "The document nests deeper than the limit.",
    "AS109": "A YAML tag, a non-string key or another construct that specs do not use.",
    "AS110": "A referenced spec file (use:) cannot be used: absolute, outside the spec's folder, or a cycle.",
    "AS111": "An import cannot be used: not archspec:NAME of a shipped library, absolute, outside the importing file's "
    "folder, missing, a cycle of imports, or past the imports / import_depth limits.",
    "AS112": "Two imported libraries, or an import and one of the file's own blocks, define a block of the same name.",
    "AS201": "A required key is missing.",
    "AS202": "An unknown key; the message lists the keys allowed there.",
    "AS203": "A value has the wrong type.",
    "AS204": "An unknown op or block name in a layer's op:.",
    "AS205": "An unknown variant.",
    "AS206": "An unknown parameter (in --set, a variant, or params:).",
    "AS207": "Unsupported format version; this archspec reads archspec: 1.",
    "AS208": "A parameter value does not match its declared type.",
    "AS209": "A check: of the spec or of a block does not hold for the parameter values given.",
    "AS301": "An expression does not parse.",
    "AS302": "An expression uses a construct that specs may not use (attributes, lambdas, ...).",
    "AS303": "An expression names an unknown variable or function.",
    "AS304": "An expression fails when evaluated (division by zero, wrong types, bad index).",
    "AS305": "An expression or its result exceeds the size limits.",
    "AS401": "A layer refers (from:) to a name that is not defined before it in its scope.",
    "AS402": "A layer gets the wrong number of inputs for its op.",
    "AS403": "An op argument is invalid (unknown, missing or of the wrong type), or a float argument is not a finite "
    "number within float32's range (a clamp bound, a pad value, a layer_scale init: it would be inf in the model).",
    "AS404": "repeat: must evaluate to a whole number >= 0.",
    "AS405": "The expanded graph exceeds the node limit.",
    "AS406": "A block uses itself, directly or through other blocks.",
    "AS407": "Two layers in one scope have the same name.",
    "AS408": "if: must evaluate to true or false.",
    "AS409": "A spec, variant, block or layer name is not a valid name: ASCII letters, digits and _, starting with a "
    "letter, at most 100 characters, not a Python keyword; block and layer names also not an attribute of "
    "torch.nn.Module (training, graph, forward, ...).",
    "AS410": "The graph is empty or has no output.",
    "AS430": "Two layers' module paths clash: one is the same as, or the parent of, the other (a dotted or numbered "
    "layer name such as downsample.0 against a repeat's copies downsample.0, downsample.1, ...).",
    "AS431": "A layer with if: and several inputs does not say which input passes on when it is skipped "
    "(else: NAME, one of its from: inputs), or else: is used without if: or names no input of the layer.",
    "AS432": "from: is an expression; from: names earlier layers (or input) as written. Pick between inputs with "
    "if: (two layers of the same name) or else:.",
    "AS433": "A parameter default is an expression; defaults are plain values. Derive values in vars: instead.",
    "AS434": "Nothing reads a layer's output, so it never reaches the network's output (a branch no merge reads, "
    "or a merge that was skipped); it would be counted and computed for nothing.",
    "AS435": "A layer's init: values: do not fit the tensor: another number of elements than the tensor has (the "
    "message gives its shape), or something other than finite numbers within float32's range. Values are "
    "listed flat or nested in the tensor's order, e.g. a [1, 16, 1, 1] conv weight takes 16 numbers.",
    "AS436": "A layer's init: names a tensor the layer does not have (on a block layer, a path such as conv.weight "
    "that no layer inside the block has); the message lists the tensors it has.",
    "AS437": "A weights: rename rule is invalid (pattern parts, captures, or the ref template's {expressions}).",
    "AS438": "An init: rule is invalid: no op:/layer:, an unknown op or distribution, an unknown or wrong argument, "
    "a number beyond float32's range (also in a layer's own init:, which maps its tensors to rules).",
    "AS439": "An init: rule names a tensor that no layer of the network has, a misspelling (the message lists one "
    "matched layer's tensors).",
    "AS440": "A layer gives a block with several inputs (inputs: [x, skip]) another number of inputs in from: than "
    "the block declares; list them in from: in the order of the block's inputs:.",
    "AS441": "A block's inputs: lists a name twice, or a name that one of the block's layers also has; rename one.",
    "AS442": "A block declares an input in inputs: that none of its layers reads (from:, or the first layer's "
    "implicit input); read it, or remove it from inputs: and from the using layers' from:.",
    "AS443": "A layer's tie: (a tensor it uses from another layer, e.g. a language model's head tied to the token "
    "embedding) names no earlier layer, a tensor that layer does not own, or one of another shape. tie: takes "
    "the full path from the network's root, as in the state dict: transformer.wte or transformer.wte.weight.",
    "AS411": "Expanding the spec takes more work than the limit (nested repeats of layers that make nothing).",
    "AS501": "Shapes do not fit: an op cannot take the shape its input gives.",
    "AS502": "A tensor is larger than the size limit.",
    "AS503": "The built network would exceed the parameter or memory limit; the message says how much it needs.",
    "AS504": "Element types do not fit: an op that computes with floats is given int64 token ids (an input declared "
    "{shape: [...], dtype: int64}; embed them first with op: embedding), an embedding is given floats, or a "
    "shape-only op (reshape, slice, concat, ...) mixes ids with floats.",
    "AS601": "The parameter count differs from expect: params.",
    "AS602": "The MAC count differs from expect: macs.",
    "AS603": "The output shape differs from expect: output.",
    "AS604": "The input shape differs from expect: input.",
    "AS701": "A weights file cannot be read, or holds something other than a state dict of dense real tensors "
    "(integer keys, meta/sparse/nested/quantized tensors, complex or boolean values, pickled Python objects: "
    "archspec never loads a file with weights_only=False, and neither should you for a file you did not make).",
    "AS702": "A weights file does not match the model's structure.",
    "AS703": "A weights tensor holds NaN or infinity.",
    "AS704": "Pairing a checkpoint by position failed: the k-th unnamed tensor of the model and of the checkpoint "
    "differ in shape or role, or one side has tensors left over. The message names both layers: the spec "
    "orders its layers differently from the reference; name them as the reference does or add weights: rename.",
    "AS705": "Pairing by position would be ambiguous: two layers with tensors of the same shapes lie on parallel "
    "branches, or their order in a .safetensors file (which keeps none) comes from sorting their names, so "
    "the checkpoint's order cannot tell them apart. Name them as the reference does, or add a weights: "
    "rename rule (or give a .pt/.pth file, which keeps the order).",
    "AS706": "A checkpoint tensor has the name of one of the model's tensors but another shape.",
    "AS707": "Tensors are left that no name pairs, and the spec says weights: {by_position: false}.",
    "AS708": "A checkpoint tensor has the name of a buffer the spec computes itself (a gather index, a constant "
    "table) but other values: the weights are for another configuration, or the spec's expression is wrong.",
    "AS709": "A checkpoint's integer tensor (an index table) pairs by name with one of the spec's weights.",
    "AS710": "A checkpoint holds the tensor a spec ties (tie:, e.g. lm_head.weight tied to transformer.wte.weight) "
    "under both names with different values: its model does not tie them. Remove the tie: to load both.",
    "AS801": "A plugin failed to load and was skipped.",
    "AS802": "Two plugins provide the same op or backend name.",
    "AS803": "An unknown backend, or a backend that cannot lower an op of the graph.",
    "AS804": "Build output could not be written, or the output path is not allowed (not a regular file or new path).",
    "AS805": "A plugin's op or backend code raised an error: a bug in that plugin, named in the message.",
    "AS806": "The command line is wrong (an option's value, or a spec path that does not exist).",
    "AS901": "A benchmark cannot run: no such device (no CUDA), no runner for the backend, bad options, a --batch whose "
    "tensors cannot fit the device's memory, or the step failed.",
    "AS902": "No reference model for --vs: unknown library, no counterpart of the spec, or an override it cannot follow.",
    "AS808": "The network cannot be exported for the input sizes of its dynamic: ranges, or a backend's "
    "toolchain failed on it.",
    "AS809": "An unknown or invalid backend setting (--option KEY=VALUE); the message lists the valid ones.",
    "AS810": "A backend or a command (build, check, train, eval, compare, bench, convert-weights) needs a "
    "package or a device that is not available here; the message names it and the extra that installs it "
    "(pip install 'archspec[torch]', '[onnx]' or '[train]').",
    "AS931": "Graphviz's `dot` program is not installed (or cannot run); install it with apt-get install graphviz "
    "or brew install graphviz. archspec graph -o x.dot needs no dot.",
    "AS932": "Graphviz's `dot` failed to lay out or render the graph; the message has its last words.",
    "AS933": "archspec graph: the -o suffix names no known format (svg, png, pdf, dot, html).",
    "AS934": "A view (graph, card, completion) needs a Python package that is not installed: pip install 'archspec[views]'.",
    "AS911": "Training data is not where --data points (no such dataset or folder, or files missing); the message "
    "says which files go where (docs/training.md).",
    "AS912": "A training data file is there but cannot be read: corrupt, truncated, or not in the official format "
    "(a CIFAR pickle that asks for anything but arrays and lists is refused, never run); a text (text:PATH) "
    "that is not a regular file, not UTF-8, larger than 256 MiB or too short for a training and a test window; "
    "an image of a folder that is not a regular file or that its decoder rejects (named; --bad-images skip "
    "leaves it out); data past a DataLimits bound (docs/limits.md): image bytes or pixels, images, classes, "
    "the arrays a pickle declares, an idx header.",
    "AS913": "A training option is wrong (optimizer, schedule, precision, augmentation, batch size, device name, "
    "--strategy, --workers, --nproc beyond the usable CPUs or the limit of 64, --nproc under torchrun), "
    "or does not fit the spec or the data (classes, channels, a non-square input for transpose), or --out "
    "already holds a run (add --resume).",
    "AS914": "The training device is not available here (--device cuda without a CUDA GPU).",
    "AS915": "A checkpoint cannot be used: missing or unreadable files, weights that do not fit the model, a "
    "--resume whose options differ from the run's, a run folder whose state.json or state tensors are damaged "
    "(the message names the field: an epoch the history does not back, a non-finite time, optimizer state "
    "of the wrong shape, missing or extra RNG states), a --resume with another --strategy than the run's, a "
    "sharded (FSDP) checkpoint missing a shard, or a run folder that is, or lies below, a symbolic link.",
    "AS916": "A distributed training process (--nproc) failed, or --nproc asks for more GPUs than are visible; "
    "a worker's own messages come before this one.",
    "AS917": "A training or evaluation step failed (out of memory, a runtime error, a loss that became NaN, a "
    "data-loading worker that died).",
    "AS918": "A compare entry is not SPEC or SPEC:key=value,... with known training keys or spec parameters.",
}
