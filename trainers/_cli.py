"""What every tfvideo binary does the same way: error lines, exit status, TensorFlow's start-up noise.

Each binary's entry point is `run()`: `_cli.run(main, "tfvideo-<name>")`. Then

* a bad flag (absl parse error, `app.UsageError`, `UsageError`) prints one line
  `tfvideo-<name>: error: <message>` on stderr and exits 2;
* any other exception escaping `main` prints one such line and exits 1 (its type is named
  when it is not a plain user-facing error: ValueError, OSError, TensorFlow op errors);
* `--verbose` (every binary has it) prints the traceback above that line.

TensorFlow writes several lines while it loads and probes for CUDA ("Could not find cuda
drivers", "failed call to cuInit", the oneDNN and cpu_feature_guard banners) before its own
log level applies. `quiet_tensorflow_startup()` runs when the `trainers` or `export` package is
imported by a binary, before TensorFlow loads: it sets `TF_CPP_MIN_LOG_LEVEL` and holds back
those known lines, passing any other output through. It does nothing when the user set
`TF_CPP_MIN_LOG_LEVEL` to 0 or 1 (asking for TensorFlow's info lines), under `--verbose`, or
when the packages are imported as a library.

This module imports neither TensorFlow nor the package's heavy modules.
"""

import gc
import os
import re
import sys
import tempfile
import traceback

from absl import app, flags

# Module run by each console script (setup.cfg) -> program name.
BINARIES = {
    "trainers.make_synthetic": "tfvideo-make-synthetic",
    "trainers.prepare_data": "tfvideo-prepare",
    "trainers.train": "tfvideo-train",
    "trainers.evaluate": "tfvideo-evaluate",
    "trainers.extract_features": "tfvideo-extract-features",
    "trainers.stream": "tfvideo-stream",
    "trainers.convert": "tfvideo-convert",
    "trainers.models": "tfvideo-models",
    "export.export_saved_model": "tfvideo-export",
    "export.serve": "tfvideo-serve",
    "export.predict": "tfvideo-predict",
}

EXIT_RUNTIME = 1
EXIT_USAGE = 2

# TensorFlow's start-up lines that say nothing to a user of a binary (regexes on one line).
_STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|oneDNN custom operations are on"
    r"|cudart_stub\.cc.*Could not find cuda drivers"
    r"|failed call to cuInit"
    r"|cpu_feature_guard\.cc"
    r"|^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered"
    r"|TF-TRT Warning: Could not find TensorRT"
)
# Level for TensorFlow's C++ logs once it has loaded: errors only (TensorFlow raises them in Python too).
_DEFAULT_TF_LOG_LEVEL = "2"


class UsageError(ValueError):
    """A flag value or combination that cannot work; the message names the flag (exit 2)."""


class Failure(RuntimeError):
    """A runtime failure whose message is already written for the user (exit 1)."""


def binary_name(argv=None, orig_argv=None):
    """`tfvideo-<name>` when this process is one of the binaries, else None.

    Recognizes console scripts (`tfvideo-train`), `python -m trainers.train` and
    `python trainers/train.py`.
    """
    argv = sys.argv if argv is None else argv
    orig_argv = getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
    base = os.path.basename(argv[0]) if argv else ""
    if base in BINARIES.values():
        return base
    for i, arg in enumerate(orig_argv[:-1]):
        if arg == "-m":
            return BINARIES.get(orig_argv[i + 1])
    if argv and argv[0].endswith(".py"):
        parts = os.path.normpath(argv[0])[:-3].split(os.sep)
        return BINARIES.get(".".join(parts[-2:]))
    return None


def _argv_verbose(argv):
    """True when the command line asks for --verbose (any value but false / 0)."""
    for arg in argv[1:]:
        if arg == "--":
            break
        if arg in ("--verbose", "-verbose"):
            return True
        if arg.startswith(("--verbose=", "-verbose=")):
            return arg.split("=", 1)[1].strip().lower() not in ("0", "false", "f", "no", "n", "")
    return False


def quiet_tensorflow_startup():
    """Sets TensorFlow's C++ log level and holds back its start-up lines (see the module doc).

    Called by the `trainers` and `export` packages at import; acts only in a binary's process,
    once, and only before TensorFlow is loaded.
    """
    if getattr(quiet_tensorflow_startup, "done", False):
        return
    quiet_tensorflow_startup.done = True
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip()
    if (binary_name() is None or "tensorflow" in sys.modules or level in ("0", "1")
            or _argv_verbose(sys.argv)):
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = level or _DEFAULT_TF_LOG_LEVEL
    with _filtered_stderr(_STARTUP_NOISE):
        import tensorflow as tf  # Here: after TF_CPP_MIN_LOG_LEVEL is set, inside the stderr filter.

        tf.config.list_physical_devices("GPU")  # The CUDA probe (cuInit) happens here, not at import.


class _filtered_stderr:
    """Collects what is written to file descriptor 2 (C++ and Python) in the block, then writes
    back every line that does not match `noise`."""

    def __init__(self, noise):
        self.noise = noise

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        self.capture = tempfile.TemporaryFile()
        os.dup2(self.capture.fileno(), 2)
        return self

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.capture.seek(0)
        text = self.capture.read().decode(errors="replace")
        self.capture.close()
        kept = [line for line in text.splitlines(keepends=True) if not self.noise.search(line)]
        if kept:
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
        return False


def _verbose():
    values = flags.FLAGS
    if "verbose" not in values:
        return False
    try:
        return bool(values["verbose"].present and values["verbose"].value)
    except flags.Error:
        return False


def message(error):
    """The one-line text of an exception, naming its type when the type is itself information."""
    text = getattr(error, "message", None)  # TensorFlow op errors: the message without the op trace.
    if callable(getattr(error, "code", None)) and callable(getattr(error, "details", None)):  # grpc.RpcError
        return f"{getattr(error.code(), 'name', error.code())}: {error.details()}"
    if not isinstance(text, str) or not text.strip():
        text = str(error)
    if isinstance(error, KeyError) and len(error.args) == 1:
        text = repr(error.args[0])
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    text = _user_code_error(lines) if lines and lines[0] == "in user code:" else (lines[0] if lines else "")
    plain = (isinstance(error, (ValueError, OSError, Failure, app.UsageError, flags.Error))
             or type(error).__module__.startswith("tensorflow"))
    if not plain or not text:
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text


_RAISED = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.*)$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Keras bolds the reason of a layer call error.


def _user_code_error(lines):
    """The error inside a traced function's "in user code:" text (tf.function, Keras):
    `Type: message` of the innermost raise, with Keras's "Exception encountered when
    calling X" followed by the reason line; the file/line frames are left out."""
    lines = [_ANSI.sub("", line) for line in lines]
    for i in range(len(lines) - 1, 0, -1):
        found = _RAISED.match(lines[i])
        if not found:
            continue
        kind, text = found.groups()
        if text.startswith("Exception encountered when calling"):
            reason = next((line for line in lines[i + 1:] if not line.startswith("Arguments received")), "")
            text = f"{text.rstrip('.')}: {reason}" if reason else text
        return f"{kind}: {text}"
    return lines[-1]


def report(prog, error, verbose=None):
    """Prints `prog: error: <one line>` (the traceback first under --verbose)."""
    if verbose if verbose is not None else _verbose():
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    print(f"{prog}: error: {message(error)}", file=sys.stderr, flush=True)


# Errors in input files named on the command line (annotation lists, label maps): usage errors.
_USAGE_ERROR_TYPES = ("tfvideo.data._annotations.AnnotationError",)


def _exit_status(error):
    if isinstance(error, (UsageError, app.UsageError, flags.Error)) or any(
            f"{cls.__module__}.{cls.__qualname__}" in _USAGE_ERROR_TYPES for cls in type(error).__mro__):
        return EXIT_USAGE
    return EXIT_RUNTIME


def _define_verbose():
    from trainers import _flags  # Here, not at the top: _flags imports this module.

    _flags.define(flags.DEFINE_boolean, "verbose", False, "Print the traceback of an error (and TensorFlow's start-up log).")


def define_verbosity(name, default, help_text):
    """An integer level flag that also takes a bare `--<name>` (= 1) and `--no<name>` (= 0).

    For a binary whose `--verbose` is a level (tfvideo-train's progress bar): `--verbose` alone
    stays valid, and any `--verbose=<level > 0>` given on the command line shows tracebacks.
    """
    class _LevelParser(flags.IntegerParser):
        def parse(self, argument):
            if isinstance(argument, str) and argument.lower() in ("true", "false"):
                return int(argument.lower() == "true")
            return super().parse(argument)

    flag = flags.Flag(_LevelParser(lower_bound=0), flags.ArgumentSerializer(), name, default,
                      help_text + " Given explicitly (> 0), errors also print their traceback.", boolean=True)
    flags.DEFINE_flag(flag)


_HELP_ARGS = ("--help", "-h", "-?", "--help=true", "--help=1")


def _binary_modules():
    """Names under which absl filed this process's tfvideo flags: the binaries' modules and shared helpers.

    `python -m trainers.train` files its own flags under the script path (absl's name for
    `__main__`), the console script under `trainers.train`; helpers under `trainers._flags`,
    `trainers._online`, ...
    """
    main = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else None
    modules = []
    for name in flags.FLAGS.flags_by_module_dict():
        if name.startswith(("trainers.", "export.")) or (main and os.path.abspath(name) == main):
            modules.append(name)
    own = [m for m in modules if not m.rpartition(".")[2].startswith("_")]
    return own + [m for m in modules if m not in own]


def binary_help(prog):
    """`prog`'s own flags (no absl or TensorFlow ones), grouped by the module defining them."""
    lines = [f"usage: {prog} [flags]", ""]
    doc = (sys.modules.get("__main__").__doc__ or "").strip() if sys.modules.get("__main__") else ""
    if doc and not doc.startswith("Entry point"):
        lines += [doc.splitlines()[0], ""]
    for module in _binary_modules():
        entries = sorted(flags.FLAGS.flags_by_module_dict()[module], key=lambda f: f.name)
        own = module.endswith(".py") or not module.rpartition(".")[2].startswith("_")
        lines.append(f"{prog} flags:" if own else f"shared flags ({module}):")
        for flag in entries:
            default = "" if flag.default is None else f" (default: {flag.default_as_str})"
            lines.append(f"  --{flag.name}: {flag.help}{default}")
        lines.append("")
    lines.append("All flags, absl's and TensorFlow's too: --helpfull")
    return "\n".join(lines)


def parse_flags(prog, argv):
    """absl flag parsing with errors as one `prog: error:` line and exit 2.

    `--help` (`-h`) prints the binary's own flags grouped (absl's would only say "Try
    --helpfull": its own flags live in modules other than the script), and exits 0.
    """
    args = list(argv[1:])
    if "--" in args:
        args = args[: args.index("--")]
    if any(a in _HELP_ARGS for a in args):
        print(binary_help(prog), flush=True)
        sys.exit(0)
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        print(f"{prog}: error: {message(e)}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USAGE)


def guard(main, prog, ranges=None):
    """`main` with the flags of `ranges` checked first (`trainers._flags.check_ranges`) and every
    exception turned into one `prog: error:` line and the exit status."""

    def guarded(argv):
        try:
            if ranges:
                from trainers import _flags  # Here, not at the top: _flags imports this module.

                _flags.check_ranges(flags.FLAGS, ranges)
            return main(argv)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # noqa: BLE001 -- every error becomes one line; --verbose shows where.
            report(prog, e)
            return _exit_status(e)

    return guarded


def run(main, prog, ranges=None):
    """`absl.app.run(main)` with the binaries' error contract (see the module doc).

    ranges: {flag: rule} of the binary's numeric flags, checked before `main` runs (exit 2).
    """
    _define_verbose()
    # The imports (TensorFlow, Keras) leave hundreds of thousands of objects that live as long
    # as the process: frozen, the garbage collector stops traversing them in every collection
    # of the run and at exit (~1.4 s of CPU per program on 2 cores; measured in the closing
    # note of issue 22). Frozen again at the end: the run's objects go with the process.
    gc.freeze()
    try:
        app.run(guard(main, prog, ranges), flags_parser=lambda argv: parse_flags(prog, argv))
    finally:
        gc.freeze()
