"""Registry rules for plugin lowerings: duplicates are errors naming both providers; a lowering
table that fails to import is reported and skipped. Plugins here are Plugin objects added directly
(the entry-point path is covered with a real installed package in test_plugins.py)."""

from pathlib import Path
import sys
import types

import pytest

import archspec
from archspec.errors import ArchspecError
from archspec.ops.base import Plugin
from archspec.registry import Registry, default_registry

SEED = Path(__file__).resolve().parents[1] / "specs/seed_cnn.yaml"


def registry_with(plugin: Plugin, provider: str = "extra-plugin 1.0") -> Registry:
    registry = Registry()
    base = default_registry()
    registry.ops.update(base.ops)
    registry.backends.update(base.backends)
    registry.add(plugin, provider)
    return registry


@pytest.fixture
def lowering_module(monkeypatch):
    module = types.ModuleType("fake_lowerings")
    module.RELU = {"relu": lambda node, shapes: None}
    monkeypatch.setitem(sys.modules, "fake_lowerings", module)
    return module


def test_a_plugin_cannot_replace_a_builtin_lowering(lowering_module):
    registry = registry_with(Plugin(lowerings={"torch": "fake_lowerings:RELU"}))
    with pytest.raises(ArchspecError) as info:
        registry.backend("torch")
    assert info.value.code == "AS802"
    assert "archspec 0.1.0" in info.value.message and "extra-plugin 1.0" in info.value.message


def test_a_broken_lowering_table_is_skipped_and_reported():
    registry = registry_with(Plugin(lowerings={"torch": "no_such_module_anywhere:LOWERINGS"}))
    module = archspec.build(SEED, registry=registry)
    assert sum(p.numel() for p in module.parameters()) == 66706
    assert len(registry.problems) == 1 and registry.problems[0].startswith(
        "AS801: torch lowerings of plugin extra-plugin 1.0"
    )
