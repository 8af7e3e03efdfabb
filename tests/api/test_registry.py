"""The one registry mechanism (tfvideo/api/_registry.py) and the rule that no module reads
another module's private registry."""

import os
import re
import sys
import types

import pytest

from tfvideo.api._registry import Registry

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Library and program code; tests may clean up their registrations through the private objects.
_SOURCE_DIRS = ("tfvideo", "feature_columns", "trainers", "export", "benchmarks", "scripts")


class WidgetError(ValueError):
    pass


def test_register_get_names_meta_and_errors():
    widgets = Registry("widget", error=WidgetError)
    assert widgets.names() == [] and len(widgets) == 0
    widgets.register("b", int, size=2)
    widgets.register("a", float)
    assert widgets.names() == ["a", "b"] and widgets.items() == [("a", float), ("b", int)]
    assert widgets.get("b") is int and dict(widgets.meta("b")) == {"size": 2} and "a" in widgets
    with pytest.raises(TypeError):
        widgets.meta("b")["size"] = 3  # Metadata is read-only.

    with pytest.raises(WidgetError) as e:
        widgets.get("c")
    assert str(e.value) == "Unknown widget 'c'; available: a, b."
    with pytest.raises(WidgetError, match=r"^Unknown widget 'c'; available: a, b\.$"):
        widgets.meta("c")
    with pytest.raises(ValueError, match=r"^Unknown gadget 'x'; available: none registered\.$"):
        Registry("gadget").get("x")

    with pytest.raises(ValueError, match=r"^Widget 'a' is already registered; pass overwrite=True to replace it\.$"):
        widgets.register("a", str)
    assert widgets.get("a") is float  # The refused registration changed nothing.
    widgets.register("a", str, overwrite=True, note="new")
    assert widgets.get("a") is str and dict(widgets.meta("a")) == {"note": "new"}

    for bad in ("", " a", "a,b", 3, None):
        with pytest.raises(ValueError, match=r"^Widget name .* must be a non-empty string"):
            widgets.register(bad, int)
    widgets.unregister("a")
    widgets.unregister("never")  # Absent: no error.
    assert widgets.names() == ["b"]


def _registries():
    """(module file, attribute) of every module-level Registry in the imported project modules."""
    import feature_columns  # noqa: F401
    import tfvideo  # noqa: F401
    from tfvideo import data, models, online  # noqa: F401
    from trainers import _online, _recipes  # noqa: F401

    found = []
    for name, module in list(sys.modules.items()):
        if not isinstance(module, types.ModuleType) or name.split(".")[0] not in ("tfvideo", "feature_columns", "trainers"):
            continue
        for attr, value in vars(module).items():
            if isinstance(value, Registry):
                found.append((os.path.realpath(module.__file__), attr))
    return found


def test_no_module_reads_another_modules_private_registry():
    registries = _registries()
    kinds = {attr for _, attr in registries}
    # All six kinds of named things go through the one mechanism.
    assert {"_PRESETS", "_DETECTORS", "_SAMPLERS", "_RECIPES", "_FORMATS", "_COLUMN_CLASSES"} <= kinds, kinds
    assert all(attr.startswith("_") for attr in kinds)  # Private: reached through register_*/list_*/get functions.
    owners = {path for path, _ in registries}
    pattern = re.compile(r"\w\.(%s)\b" % "|".join(sorted(kinds)))
    offenders = []
    for top in _SOURCE_DIRS:
        for root, _, files in os.walk(os.path.join(REPO, top)):
            for file in files:
                path = os.path.realpath(os.path.join(root, file))
                if not file.endswith(".py") or path in owners:
                    continue
                with open(path, encoding="utf-8") as f:
                    for number, line in enumerate(f, 1):
                        if pattern.search(line):
                            offenders.append(f"{os.path.relpath(path, REPO)}:{number}: {line.strip()}")
    assert not offenders, "private registries read from outside their module:\n" + "\n".join(offenders)
    # The check sees such a read: the pattern the old trainers/_online.py used.
    assert pattern.search("cls, _ = _registry._DETECTORS[name]")
