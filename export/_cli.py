"""One-line user errors for the export and serving binaries, through the one contract of
trainers/_cli.py: `usage_error` ends in exit 2, `fail(..., RUNTIME)` in exit 1, each as one
`tfvideo-<name>: error: <message>` line printed by `trainers._cli.run` (traceback under
`--verbose`)."""

from trainers import _cli

USAGE = _cli.EXIT_USAGE
RUNTIME = _cli.EXIT_RUNTIME


def fail(binary, message, status):
    """Raises the error `trainers._cli.run` reports for `tfvideo-<binary>` with exit `status`."""
    del binary  # The program name comes from `_cli.run`.
    raise (_cli.UsageError if status == USAGE else _cli.Failure)(message)


def usage_error(binary, message):
    fail(binary, message, USAGE)
