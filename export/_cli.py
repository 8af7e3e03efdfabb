"""One-line user errors for the export and serving binaries.

A user error is `tfvideo-<name>: error: <message>` on stderr and exit status 2 (a bad flag)
or 1 (a runtime failure such as a missing model); the traceback is printed only under
`--verbose`.
"""

import sys
import traceback

from absl import flags

from trainers import _flags

_flags.define(flags.DEFINE_bool, "verbose", False, "On an error, also print the traceback.")

USAGE = 2
RUNTIME = 1


def fail(binary, message, status):
    """Prints `tfvideo-<binary>: error: <message>` and exits with `status`."""
    if flags.FLAGS.is_parsed() and flags.FLAGS.verbose and sys.exc_info()[0] is not None:
        traceback.print_exc()
    print(f"tfvideo-{binary}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(status)


def usage_error(binary, message):
    fail(binary, message, USAGE)
