"""Worker processes that exit when the process that started them dies (SIGKILL included).

A parent killed with SIGKILL cannot stop its workers, and a pool worker waiting for work
would wait forever. Standard library only, so a worker can load it before anything heavy.
"""

import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def exit_with_parent(parent_pid, use_prctl=True, interval=1.0):
    """Makes this process exit as soon as process `parent_pid` (its parent) is gone.

    On Linux the kernel sends SIGKILL when the parent dies (PR_SET_PDEATHSIG; note that it
    fires when the parent *thread* that started this process ends, so start workers from
    a thread that outlives them). Everywhere, a daemon thread also polls the parent id
    every `interval` seconds and exits (status 1) once it changed: the fallback where
    prctl is missing. Use as a process-pool initializer with `initargs=(os.getpid(),)`.
    """
    if use_prctl and sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # Already gone before prctl took effect.
        os._exit(1)

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
