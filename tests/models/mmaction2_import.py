"""Imports MMAction2 1.2.0 (the reference of the parity tests and benchmarks/tsm_vs_pytorch.py).

Only imported where torch, mmengine, mmcv and mmaction2 are installed.
"""

import sys
import types
import warnings


def import_mmaction():
    """`mmaction` with its models registered and its default registry scope set.

    mmaction2 1.2.0's wheel lacks the DRN localizer package that `mmaction.models`
    imports: an empty stand-in is put in its place first.
    """
    for name in ("mmaction.models.localizers.drn", "mmaction.models.localizers.drn.drn"):
        if name not in sys.modules:
            stub = types.ModuleType(name)
            stub.DRN = type("DRN", (), {})
            stub.__path__ = []
            sys.modules[name] = stub
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mmaction
        import mmaction.models  # noqa: F401 -- registers the models.
    from mmengine.registry import init_default_scope

    init_default_scope("mmaction")
    return mmaction
