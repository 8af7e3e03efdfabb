"""The tf_export machinery: publishing, duplicate names, namespaces hold only exports."""

import importlib

import pytest

import tfvideo
from tfvideo.api import _export

NAMESPACES = ["data", "feature_columns", "layers", "models", "online", "metrics", "export", "serving"]


def test_decorator_publishes_under_public_name():
    from tfvideo.models import _recognizer2d

    assert tfvideo.models.TSM is _recognizer2d.TSM
    assert _export.get_symbol("tfvideo.models.TSM") is _recognizer2d.TSM
    assert "tfvideo.models.TSM" in _recognizer2d.TSM._tfvideo_api_names


def test_name_published_twice_is_an_error():
    @_export.tf_export("tfvideo.layers.ThrowawayForTest")
    class First:
        pass

    try:
        with pytest.raises(_export.ExportError, match="already published"):

            @_export.tf_export("tfvideo.layers.ThrowawayForTest")
            class Second:
                pass
    finally:
        _export.unregister("tfvideo.layers.ThrowawayForTest")


@pytest.mark.parametrize(
    "name, message",
    [
        ("models.TSM", "must start with"),
        ("tfvideo.nowhere.Thing", "namespace"),
        ("tfvideo.models._Private", "public identifier"),
    ],
)
def test_malformed_names_are_rejected(name, message):
    with pytest.raises(_export.ExportError, match=message):
        _export.tf_export(name)


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_namespace_exposes_exactly_its_exports(namespace):
    module = importlib.import_module(f"tfvideo.{namespace}")
    public = sorted(n for n in vars(module) if not n.startswith("_"))
    expected = sorted(n.rpartition(".")[2] for n in _export.exported_names(f"tfvideo.{namespace}"))
    assert public == expected
    assert sorted(module.__all__) == expected


def test_implementation_modules_are_private():
    import pkgutil

    for namespace in ["data", "layers", "models"]:
        package = importlib.import_module(f"tfvideo.{namespace}")
        for info in pkgutil.iter_modules(package.__path__):
            assert info.name.startswith("_"), f"tfvideo.{namespace}.{info.name} should be private"
