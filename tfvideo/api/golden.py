"""The golden listing of tfvideo's public API.

Regenerate after an intended API change:
    python -m tfvideo.api.golden --update
Check (what the test does):
    python -m tfvideo.api.golden --check
"""

import argparse
import inspect
import pathlib
import sys

GOLDEN_PATH = pathlib.Path(__file__).with_name("golden.txt")


def _signature(obj):
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"


def _describe(name, obj):
    """One or more lines describing a public symbol."""
    if inspect.isclass(obj):
        lines = [f"class {name}{_signature(obj.__init__).replace('(self, ', '(').replace('(self)', '()')}"]
        members = {}
        for base in reversed(obj.__mro__):  # The class's own members and those of its private bases.
            if base is obj or (base is not object and base.__name__.startswith("_")):
                members.update(vars(base))
        for attr, member in sorted(members.items()):
            if attr.startswith("_"):
                continue
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if isinstance(member, property):
                lines.append(f"  property {name}.{attr}")
            elif callable(member):
                lines.append(f"  method {name}.{attr}{_signature(member)}")
        return lines
    if callable(obj):
        return [f"def {name}{_signature(obj)}"]
    return [f"const {name} = {obj!r}"]


def api_listing():
    """The current public API as text: one symbol (and its public members) per block."""
    import importlib

    import tfvideo
    from tfvideo.api import _export

    for namespace in tfvideo.__all__:  # Namespaces load on first use: importing each publishes it.
        importlib.import_module(f"tfvideo.{namespace}")

    lines = []
    for name in _export.exported_names():
        lines.extend(_describe(name, _export.get_symbol(name)))
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--update", action="store_true", help="rewrite golden.txt")
    mode.add_argument("--check", action="store_true", help="exit 1 if the API changed")
    args = parser.parse_args(argv)
    current = api_listing()
    if args.update:
        GOLDEN_PATH.write_text(current)
        print(f"wrote {GOLDEN_PATH} ({current.count(chr(10))} lines)")
        return 0
    golden = GOLDEN_PATH.read_text() if GOLDEN_PATH.exists() else ""
    if golden != current:
        import difflib

        sys.stdout.writelines(
            difflib.unified_diff(
                golden.splitlines(True), current.splitlines(True), "golden.txt", "current"
            )
        )
        print("The public API changed: run `python -m tfvideo.api.golden --update`.")
        return 1
    print("public API matches golden.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
