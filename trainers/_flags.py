"""Flag definitions shared by several binaries (defined once per process)."""

from absl import flags


def define(definer, name, *args, **kwargs):
    """`definer(name, *args, **kwargs)` unless another binary in this process defined `name`."""
    if name not in flags.FLAGS:
        definer(name, *args, **kwargs)
