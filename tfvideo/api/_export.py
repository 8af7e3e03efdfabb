"""The `tf_export` decorator: publishes an implementation under a public name.

Implementation modules are private (their names start with `_`). A symbol becomes part
of the public API only through `@tf_export("tfvideo.<namespace>.<Name>")`; each public
namespace package calls `publish(__name__, globals())` after importing its
implementation modules, which binds exactly the exported names there.
"""

_PREFIX = "tfvideo."
_NAMESPACES = (
    "tfvideo.data",
    "tfvideo.feature_columns",
    "tfvideo.layers",
    "tfvideo.models",
    "tfvideo.online",
    "tfvideo.metrics",
    "tfvideo.export",
    "tfvideo.serving",
)

# public name -> object. The only global state: a registry.
_REGISTRY = {}


class ExportError(ValueError):
    """A public name is malformed or published twice."""


def _check_name(name):
    if not isinstance(name, str) or not name.startswith(_PREFIX):
        raise ExportError(f"tf_export name {name!r} must start with {_PREFIX!r}.")
    namespace, _, short = name.rpartition(".")
    if namespace not in _NAMESPACES:
        raise ExportError(
            f"tf_export name {name!r}: namespace {namespace!r} is not one of {_NAMESPACES}."
        )
    if not short.isidentifier() or short.startswith("_"):
        raise ExportError(f"tf_export name {name!r}: {short!r} is not a public identifier.")


class tf_export:  # noqa: N801 -- named after TensorFlow's decorator on purpose.
    """Decorator publishing a class or function under one or more public names.

    Example:
        @tf_export("tfvideo.models.TSM")
        class TSM(keras.Model): ...

    Publishing a name that is already taken by another object raises `ExportError`.
    """

    def __init__(self, *names):
        if not names:
            raise ExportError("tf_export needs at least one public name.")
        for name in names:
            _check_name(name)
        self._names = names

    def __call__(self, symbol):
        for name in self._names:
            if name in _REGISTRY and _REGISTRY[name] is not symbol:
                previous = _REGISTRY[name]
                raise ExportError(
                    f"Public name {name!r} is already published by "
                    f"{getattr(previous, '__module__', '?')}."
                    f"{getattr(previous, '__qualname__', previous)}; cannot publish "
                    f"{getattr(symbol, '__module__', '?')}."
                    f"{getattr(symbol, '__qualname__', symbol)} under it."
                )
            _REGISTRY[name] = symbol
        existing = getattr(symbol, "_tfvideo_api_names", ())
        try:
            symbol._tfvideo_api_names = tuple(existing) + self._names
        except (AttributeError, TypeError):
            pass  # Constants cannot carry attributes; the registry still holds them.
        return symbol


def export_constant(name, value):
    """Publishes a module-level constant under `name`."""
    _check_name(name)
    if name in _REGISTRY and _REGISTRY[name] != value:
        raise ExportError(f"Public name {name!r} is already published.")
    _REGISTRY[name] = value
    return value


def exported_names(namespace=None):
    """Sorted public names, optionally only those directly in `namespace`."""
    names = sorted(_REGISTRY)
    if namespace is None:
        return names
    return [n for n in names if n.rpartition(".")[0] == namespace]


def get_symbol(name):
    return _REGISTRY[name]


def publish(namespace, module_globals):
    """Binds the symbols exported under `namespace` into a package's globals."""
    public = {}
    for name in exported_names(namespace):
        public[name.rpartition(".")[2]] = _REGISTRY[name]
    module_globals.update(public)
    module_globals["__all__"] = sorted(public)
    return public


def unregister(name):
    """Removes a name; for tests that publish throwaway symbols."""
    _REGISTRY.pop(name, None)
