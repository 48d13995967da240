"""The plugin registry: names of ops and backends, each mapped to the package that provides it.

Everything, the built-ins included, arrives through the `archspec.plugins` entry-point group (see
pyproject.toml). Loading an entry point imports only its `Plugin` object; backends and per-backend
lowering tables are "module:attribute" strings imported on first use, so heavy libraries are never
imported by `archspec validate`.

A plugin that fails to load (whatever it raises, KeyboardInterrupt and SystemExit included) is reported
by package name and version and skipped. Two providers of one name are an error naming both, raised when
the name is used: silently preferring one would make builds depend on install order, and failing every
command would let one bad package lock the user out of `archspec list`, which is how they find it.

`plugins=False` (`--no-plugins`, or ARCHSPEC_NO_PLUGINS=1 in the environment, as pytest's
PYTEST_DISABLE_PLUGIN_AUTOLOAD: a switch for running untrusted specs or debugging, not a behaviour)
loads archspec's own entry points only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
import importlib
from importlib.metadata import EntryPoint, entry_points
import os
from typing import Any

from archspec import collector
from archspec.errors import ArchspecError, did_you_mean, one_of
from archspec.extras import missing
from archspec.ops.base import OpDef, Plugin

GROUP = "archspec.plugins"


@dataclass(frozen=True)
class Provided:
    name: str
    provider: str  # "package version (entry point)"
    target: Any


def _import(target: str) -> Any:
    module, _, attribute = target.partition(":")
    with collector.paused():  # a backend's import brings torch: long-lived objects (archspec.collector)
        obj: Any = importlib.import_module(module)
    for part in attribute.split(".") if attribute else ():
        obj = getattr(obj, part)
    return obj


def _provider(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    package = f"{dist.name} {dist.version}" if dist is not None else "<unknown package>"
    return f"{package} (entry point {ep.name!r})"


@dataclass
class Registry:
    ops: dict[str, Provided] = field(default_factory=dict)
    backends: dict[str, Provided] = field(default_factory=dict)
    lowerings: dict[str, list[Provided]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # AS801/AS802 messages for plugins and names that were skipped
    conflicts: dict[str, str] = field(default_factory=dict)  # "op x" / "backend x" -> the AS802 message

    def add(self, plugin: Plugin, provider: str) -> None:
        """Register one plugin's contributions; a name already taken is withdrawn and becomes an AS802
        error for whoever uses it."""
        for op in plugin.ops:
            self._claim(self.ops, "op", Provided(op.name, provider, op))
        for name, target in plugin.backends.items():
            self._claim(self.backends, "backend", Provided(name, provider, target))
        for backend, target in plugin.lowerings.items():
            self.lowerings.setdefault(backend, []).append(Provided(backend, provider, target))

    def _claim(self, table: dict[str, Provided], kind: str, item: Provided) -> None:
        key = f"{kind} {item.name}"
        if key in self.conflicts:
            self.conflicts[key] += f" and by {item.provider}"
            return
        if item.name in table:
            first = table.pop(item.name)
            self.conflicts[key] = (
                f"{kind} {item.name!r} is provided twice: by {first.provider} and by {item.provider}; "
                f"uninstall one of the packages or ask its author to rename the {kind}"
            )
            self.problems.append(f"AS802: {self.conflicts[key]}. It cannot be used until then")
            return
        table[item.name] = item

    def conflict(self, kind: str, name: str) -> str | None:
        """The AS802 message when `name` is provided twice, else None."""
        return self.conflicts.get(f"{kind} {name}")

    def op(self, name: str) -> OpDef[Any]:
        return self.ops[name].target

    def op_names(self) -> list[str]:
        return sorted(self.ops)

    def backend(self, name: str) -> Any:
        """Import and instantiate backend `name`, handing it every plugin's lowerings for it.

        A plugin lowering for an op the backend (or another plugin) already lowers is an AS802 error;
        a lowering table that fails to import is reported (AS801) and skipped.
        """
        if self.conflict("backend", name):
            raise ArchspecError("AS802", self.conflict("backend", name) or "")
        if name not in self.backends:
            raise ArchspecError(
                "AS803",
                f"unknown backend {name!r}.{did_you_mean(name, self.backends)} Known: {one_of(list(self.backends))}",
            )
        try:
            factory = _import(self.backends[name].target)
        except ModuleNotFoundError as exc:  # torch (or a plugin's toolchain) not installed: say which extra
            raise missing(exc, f"the {name} backend") from None
        own = factory(extra_lowerings={})
        extra: dict[str, Callable[..., Any]] = {}
        owners: dict[str, str] = {}
        # A backend that prints another's lowering table (torch-source prints torch's) names it in `lowerings_of`.
        for provided in [p for key in getattr(factory, "lowerings_of", (name,)) for p in self.lowerings.get(key, [])]:
            try:
                table: Mapping[str, Callable[..., Any]] = dict(_import(provided.target))
            except BaseException as exc:  # noqa: B036 - a plugin must not take archspec down, whatever it raises
                self.problems.append(
                    f"AS801: {name} lowerings of plugin {provided.provider} failed to load and were skipped: "
                    f"{type(exc).__name__}: {exc}"
                )
                continue
            for op_name, lowering in table.items():
                first = owners.get(op_name) or (self.backends[name].provider if own.supports(op_name) else None)
                if first:
                    raise ArchspecError(
                        "AS802",
                        f"the {name} lowering of op {op_name!r} is provided twice: by {first} and by "
                        f"{provided.provider}; uninstall one of the packages",
                    )
                extra[op_name] = lowering
                owners[op_name] = provided.provider
        return factory(extra_lowerings=extra)


def _check_plugin(plugin: object, ep: EntryPoint) -> None:
    if not isinstance(plugin, Plugin):
        raise TypeError(f"{ep.value} is a {type(plugin).__name__}, not an archspec.ops.base.Plugin")
    for op in plugin.ops:
        if not isinstance(op, OpDef):
            raise TypeError(f"{ep.value}: ops must be OpDef objects, got {type(op).__name__} {op!r}")
    for table in (plugin.backends, plugin.lowerings):
        for key, target in table.items():
            if not isinstance(target, str) or ":" not in target:
                raise TypeError(f"{ep.value}: {key!r} must map to a 'module:attribute' string, got {target!r}")


def _is_builtin(ep: EntryPoint) -> bool:
    dist = getattr(ep, "dist", None)
    return dist is not None and dist.name == "archspec"


def build_registry(eps: Iterable[EntryPoint]) -> Registry:
    registry = Registry()
    # Sorted so that which provider is named first in an AS802 error does not depend on install order.
    for ep in sorted(eps, key=lambda e: (not _is_builtin(e), e.name, e.value)):
        provider = _provider(ep)
        try:
            plugin = ep.load()
            _check_plugin(plugin, ep)
        except BaseException as exc:  # a broken third-party plugin must not break archspec itself, whatever it raises
            registry.problems.append(
                f"AS801: plugin {provider} failed to load and was skipped: {type(exc).__name__}: {exc}"
            )
            continue
        registry.add(plugin, provider)
    return registry


NO_PLUGINS_VARIABLE = "ARCHSPEC_NO_PLUGINS"


def plugins_disabled() -> bool:
    return os.environ.get(NO_PLUGINS_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


@lru_cache(maxsize=2)
def _registry(plugins: bool) -> Registry:
    eps = entry_points(group=GROUP)
    return build_registry(eps if plugins else [ep for ep in eps if _is_builtin(ep)])


def default_registry(plugins: bool | None = None) -> Registry:
    """The registry of installed plugins; `plugins=False` (or ARCHSPEC_NO_PLUGINS=1) keeps archspec's own only."""
    return _registry(not plugins_disabled() if plugins is None else plugins)
