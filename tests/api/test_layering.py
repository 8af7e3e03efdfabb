"""Dependencies point down: programs (trainers/, export/) -> library (tfvideo, feature_columns).

The library never imports a program module, not even inside a function; `feature_columns`
needs nothing from tfvideo but the export registry (`tfvideo.api`). Whatever is imported
first, every public namespace ends up complete (the golden listing's names).
"""

import ast
import json
import pathlib
import subprocess
import sys
import textwrap

import pytest

from tfvideo.api import golden

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROGRAMS = ("trainers", "export")


def _imports(path):
    """(line, imported module) for every import in a file, function-level ones included.

    A relative import is resolved against the file's package, so `from . import x` inside
    tfvideo/export/ reads as `tfvideo.export.x`.
    """
    package = list(path.relative_to(ROOT).with_suffix("").parts)[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:  # `from tfvideo import data` imports tfvideo.data.
                yield node.lineno, f"{module}.{alias.name}" if alias.name != "*" else module


def _violations(package, allowed):
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in _imports(path):
            if not allowed(module):
                found.append(f"{path.relative_to(ROOT)}:{line}: imports {module}")
    return found


def _not_a_program(module):
    return module.split(".")[0] not in PROGRAMS


def _registry_only(module):
    """feature_columns may import anything but tfvideo beyond tfvideo.api, and no program."""
    head = module.split(".")[0]
    if head == "tfvideo":
        return module == "tfvideo.api" or module.startswith("tfvideo.api.")
    return head not in PROGRAMS


def test_library_imports_no_program_module():
    assert _violations("tfvideo", _not_a_program) == []


def test_feature_columns_imports_only_the_export_registry_from_tfvideo():
    assert _violations("feature_columns", _registry_only) == []


def test_scanner_sees_function_level_and_relative_imports(tmp_path, monkeypatch):
    """The scan would catch the upward imports this branch removed (the test can fail)."""
    package = tmp_path / "tfvideo" / "serving"
    package.mkdir(parents=True)
    (package / "_bad.py").write_text(
        textwrap.dedent(
            """
            import os

            def load():
                from export import _versions
                import trainers._experiment
                from .. import data
                from tfvideo import export
            """
        )
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _violations("tfvideo", _not_a_program) == [
        "tfvideo/serving/_bad.py:5: imports export._versions",
        "tfvideo/serving/_bad.py:6: imports trainers._experiment",
    ]
    assert [m for _, m in _imports(package / "_bad.py")][-2:] == ["tfvideo.data", "tfvideo.export"]
    assert not _registry_only("tfvideo.data") and not _registry_only("tfvideo")
    assert _registry_only("tfvideo.api._export") and _registry_only("tensorflow")


def _golden_names():
    """{namespace: sorted short names} of the committed golden listing."""
    names = {}
    for line in golden.GOLDEN_PATH.read_text().splitlines():
        if not line or line.startswith(" "):
            continue  # Members of a class.
        full = line.split(" ", 1)[1].split("(", 1)[0].split(" ", 1)[0]
        namespace, _, short = full.rpartition(".")
        names.setdefault(namespace.removeprefix("tfvideo."), []).append(short)
    return {k: sorted(v) for k, v in names.items()}


_PROBE = """
import json, sys
first = sys.argv[1]
__import__(first)
loaded = sorted(m for m in sys.modules if m == "tfvideo" or m.startswith("tfvideo."))
import tfvideo
spaces = {}
for ns in tfvideo.__all__:
    module = getattr(tfvideo, ns)
    spaces[ns] = {"all": sorted(module.__all__), "bound": sorted(n for n in module.__all__ if hasattr(module, n))}
print(json.dumps({"loaded_by_first": loaded, "namespaces": spaces}))
"""


def _probe(first):
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, first], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize(
    "first",
    ["feature_columns", "export", "trainers.train", "tfvideo.export._versions", "tfvideo.feature_columns._video"],
)
def test_every_namespace_is_complete_whatever_is_imported_first(first):
    probe = _probe(first)
    expected = _golden_names()
    assert sorted(probe["namespaces"]) == sorted(expected)
    for ns, names in expected.items():
        assert probe["namespaces"][ns]["all"] == names, ns
        assert probe["namespaces"][ns]["bound"] == names, ns


@pytest.mark.slow
def test_plain_import_tfvideo_restores_a_saved_model(tmp_path):
    # keras.saving.load_model finds tfvideo's classes after `import tfvideo` alone.
    path = str(tmp_path / "m.keras")
    code = (f"import tfvideo\n"
            f"m = tfvideo.models.get('tsm_tiny', num_classes=3)\n"
            f"m.build((None, 1, 8, 56, 56, 3)); m.save({path!r})\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    done = subprocess.run([sys.executable, "-c", f"import keras, tfvideo\nm = keras.saving.load_model({path!r})\n"
                           "print(type(m).__module__, m.count_params())"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[0].startswith("tfvideo.models")


# Function-level imports the programs keep, each with its reason on the line. `_online` reads the
# detectors' private registry there; that read is replaced by the registry work of issue 13.
_KEPT_WITHOUT_COMMENT = {("trainers/_online.py", "_constructor_args")}


def test_programs_import_at_module_level_unless_a_comment_says_why():
    unexplained = []
    for path in sorted((ROOT / "trainers").glob("*.py")):
        source = path.read_text()
        lines = source.splitlines()
        for function in ast.walk(ast.parse(source)):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                where = (str(path.relative_to(ROOT)), function.name)
                if "#" not in lines[node.lineno - 1] and where not in _KEPT_WITHOUT_COMMENT:
                    unexplained.append(f"{where[0]}:{node.lineno} ({function.name})")
    assert sorted(set(unexplained)) == []


@pytest.mark.slow
def test_video_columns_deserialize_once_tfvideo_feature_columns_is_imported():
    """`feature_columns` alone does not know the video columns (they live in the library above
    it); the error says which import registers them, and after it a serialized one round-trips."""
    code = textwrap.dedent(
        """
        from feature_columns import _base
        spec = {"class_name": "VideoColumn", "config": {"key": "clip"}}
        try:
            _base.deserialize_column(spec)
        except _base.FeatureColumnError as e:
            print(str(e))
        from tfvideo import feature_columns as fc
        from tfvideo import data
        column = fc.video_column("clip", data.SegmentSampler(4), size=32)
        again = _base.deserialize_column(_base.serialize_column(column))
        print(type(again).__name__, again.get_config() == column.get_config())
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    error, roundtrip = result.stdout.strip().splitlines()[-2:]
    assert error.startswith("Unknown feature column class 'VideoColumn'")
    assert "tfvideo.feature_columns is imported" in error
    assert roundtrip == "VideoColumn True"
