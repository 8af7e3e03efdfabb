"""One registry mechanism: named things (presets, detectors, samplers, recipes, formats).

Each kind of named thing owns one `Registry`, private to the module that defines the
kind; other modules and users go through that module's public `register_*`, `list_*`
and getter functions, never through the registry object itself.

    _PRESETS = Registry("model preset")
    _PRESETS.register("tsm_tiny", TSM, defaults={...})
    _PRESETS.get("tsm_tiny")            # -> TSM
    _PRESETS.meta("tsm_tiny")           # -> {"defaults": {...}}
    _PRESETS.get("nope")                # ValueError: Unknown model preset 'nope'; available: ...
"""

import types


class Registry:
    """Name -> object, with per-entry metadata; the only global state a module keeps.

    Args:
      kind: what an entry is, in the user's words ("model preset"); starts every error.
      error: the exception class raised for an unknown name (a ValueError subclass).
    """

    def __init__(self, kind, error=ValueError):
        self.kind = kind
        self._error = error
        self._entries = {}  # name -> (obj, read-only meta)

    def register(self, name, obj, *, overwrite=False, **meta):
        """Adds `name` -> `obj` (with `meta`); a taken name is refused unless `overwrite=True`."""
        if not isinstance(name, str) or not name or name != name.strip() or "," in name:
            raise ValueError(f"{self._capitalized} name {name!r} must be a non-empty string without commas or "
                             "surrounding spaces.")
        if name in self._entries and not overwrite:
            raise ValueError(f"{self._capitalized} {name!r} is already registered; pass overwrite=True to replace it.")
        self._entries[name] = (obj, types.MappingProxyType(dict(meta)))
        return obj

    def unregister(self, name):
        """Removes `name` (no error when absent); for tests and plug-ins that clean up."""
        self._entries.pop(name, None)

    @property
    def _capitalized(self):
        return self.kind[:1].upper() + self.kind[1:]

    def _check(self, name):
        if name not in self._entries:
            known = ", ".join(self.names()) or "none registered"
            raise self._error(f"Unknown {self.kind} {name!r}; available: {known}.")

    def get(self, name):
        """The object registered as `name`; unknown names raise one line listing the known ones."""
        self._check(name)
        return self._entries[name][0]

    def meta(self, name):
        """The read-only metadata given at registration."""
        self._check(name)
        return self._entries[name][1]

    def names(self):
        """Sorted registered names."""
        return sorted(self._entries)

    def items(self):
        """Sorted (name, object) pairs."""
        return [(name, self._entries[name][0]) for name in self.names()]

    def __contains__(self, name):
        return name in self._entries

    def __len__(self):
        return len(self._entries)

    def __repr__(self):
        return f"Registry({self.kind!r}: {', '.join(self.names())})"
