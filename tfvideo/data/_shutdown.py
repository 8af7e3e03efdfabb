"""Interpreter exit with live iterators over pipelines that run Python (never hangs).

Decoding video files (PyAV) and sampling frame indices (NumPy) run Python from TensorFlow's
tf.data threads (`tf.numpy_function`). When the interpreter finalizes, CPython ends any
other thread that then waits for the GIL, in the middle of its work; an iterator still
alive at that point (a module global, a notebook variable, an iterator Keras keeps) is
destroyed later in the finalization, and its destructor waits for that thread's work
forever: the process never exits (all threads in futex waits, 0% CPU).

So once such a pipeline exists, an exit handler (`atexit`: it runs while the interpreter
is still whole) releases the iterators still alive: their destructors then wait, with the
GIL released, for the Python calls in flight, which finish, and their threads end before
the finalization starts. The iterators of tfvideo's datasets (and the datasets made from
them by `map`, `take`, ...) are known; others over them (`tf.data.Dataset.zip`, ...) are
found by the garbage collector's object list. A released iterator holds no resource: using
it afterwards raises AttributeError (nothing runs after the exit handlers but finalization).
"""

import atexit
import gc
import threading
import weakref

from tensorflow.python.data.ops import iterator_ops

_LOCK = threading.Lock()
_ITERATORS = weakref.WeakSet()  # Iterators of tfvideo datasets: released at exit.
_REGISTERED = False


def pipeline_runs_python():
    """Notes that a pipeline calling Python from tf.data threads was built: release iterators at exit.

    Called while building such a pipeline (cheap after the first call).
    """
    global _REGISTERED
    if _REGISTERED:
        return
    with _LOCK:
        if not _REGISTERED:
            atexit.register(release_iterators)
            _REGISTERED = True


def track(iterator):
    """Releases `iterator` (an `OwnedIterator`) at exit if it is still alive; returns it."""
    with _LOCK:
        _ITERATORS.add(iterator)
    return iterator


def release(iterator):
    """Drops `iterator`'s resource (the tf.data iterator and its threads); True if it held one.

    The resource goes when its last reference does: here, unless something else still
    holds the handle (e.g. a `tf.function` that captured this iterator). Its destructor
    stops the pipeline and waits for the element computations in flight, Python ones too
    (TensorFlow releases the GIL meanwhile).
    """
    held = iterator.__dict__.pop("_iterator_resource", None)
    iterator.__dict__.pop("_components", None)  # An iterator rebuilt from its components holds it there too.
    return held is not None


def live_iterators():
    """The iterators `release_iterators` releases: tfvideo datasets' first, then any other alive.

    Another tf.data iterator may run a tfvideo pipeline too (one over a tfvideo dataset
    zipped or sampled with others is not a tfvideo dataset's): the garbage collector's
    object list has them all.
    """
    with _LOCK:
        known = list(_ITERATORS)
    found = {id(it) for it in known}
    return known + [obj for obj in gc.get_objects() if isinstance(obj, iterator_ops.OwnedIterator) and id(obj) not in found]


def release_iterators():
    """The exit handler: releases every live tf.data iterator, after collecting the garbage.

    Collecting first destroys the iterators only reference cycles still held. Returns the
    number released.
    """
    gc.collect()
    iterators = live_iterators()
    with _LOCK:
        _ITERATORS.clear()
    return sum(release(iterator) for iterator in iterators)
