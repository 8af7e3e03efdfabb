"""tfvideo-predict: classify video files with a served model, or offline with a SavedModel or model_dir.

  tfvideo-predict --server=localhost:8500 --model=tsm video.mp4 [more.mp4 | folder ...]   # gRPC
  tfvideo-predict --rest --server=localhost:8501 --model=tsm videos/                    # REST API
  tfvideo-predict --saved_model=/tmp/models/tsm videos/ --output_csv=top5.csv             # no server
  tfvideo-predict --model_dir=runs/tsm videos/ --top_k=3                                  # no server

Each video is decoded and sampled here with the test-time sampler the export records (its
`clip_spec` signature; an export without one: a segment sampler guessed from the signature's
frame count, with a warning). A two-stream export (tfvideo-export --model_dir=RGB,FLOW) gets
both streams' clips, the flow computed here as tfvideo-prepare computed the training flow
(method, bound, resize and JPEG settings from its clip spec), and returns the fused scores;
served models get its
JPEG frames on the `jpeg_frames` signature (gRPC or REST: the same request, the same
numbers). Folders are searched recursively for video files (VIDEO_EXTENSIONS), symlinked
sub-folders included (a folder reached twice, e.g. through a symlink loop, is searched once,
with a warning line naming where). Prints
`path<TAB>label:prob label:prob ...` per video; `--output_csv` also writes
`path,label_1,probability_1,...` rows. A file that cannot be read or is rejected is
reported on one line (`tfvideo-predict: error: PATH: reason`) and the others go on; the
exit status is then 1. Served models: without --model_version, each video goes to the
version served at the time (a newer one published during the run takes over, sampled as
its own clip spec says, with a warning line); --model_version pins one. An unreachable server or unknown model is one line and exit 1;
bad flags are one line and exit 2.
"""

import csv
import os
import sys

from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("server", None, "host:port of the model server (default localhost:8500 for gRPC, "
                    "localhost:8501 with --rest).")
flags.DEFINE_bool("rest", False, "Use TF Serving's REST API (tfvideo-serve --rest_api_port) instead of gRPC.")
flags.DEFINE_string("model", None, "Served model name (with a server).")
flags.DEFINE_integer("model_version", None, "A specific served version (default: the latest, followed as newer "
                     "versions are published during the run).")
flags.DEFINE_string("saved_model", None, "Offline: an exported SavedModel, a version directory or a model base path "
                    "(its highest version).")
flags.DEFINE_string("model_dir", None, "Offline: a training run's model_dir (config.json + model.keras).")
flags.DEFINE_string("signature", "jpeg_frames", "Signature taking string [B, T] JPEG frames (or, offline, "
                    "'frames': uint8 pixels without JPEG re-encoding).")
flags.DEFINE_integer("top_k", 5, "Labels per video (>= 1).")
flags.DEFINE_integer("num_clips", None, "Clips per video. Served models and --saved_model: read from the export's "
                     "clip spec (a value must agree; an export without one: default 1). --model_dir: default 1.")
flags.DEFINE_float("timeout", 30.0, "Seconds per request to a server (> 0).")
flags.DEFINE_string("output_csv", None, "Also write the top-k of every video to this CSV file.")
flags.DEFINE_enum("progress", "auto", ["auto", "always", "never"],
                  "Progress bar on stderr: auto = for 10 or more videos when stderr is a terminal.")
flags.DEFINE_bool("sliding_window", False, "Long videos (--model_dir): scores of windows of --window_seconds every "
                  "--stride_seconds, per second in --output_csv and plotted in --output_plot (export/_sliding_window.py).")
flags.DEFINE_float("window_seconds", 2.0, "--sliding_window: seconds a window covers (> 0).")
flags.DEFINE_float("stride_seconds", 1.0, "--sliding_window: seconds between windows (> 0).")
flags.DEFINE_string("output_plot", None, "--sliding_window: a PNG of the top classes' scores over time.")
flags.DEFINE_integer("plot_classes", 5, "--sliding_window: classes drawn in --output_plot (>= 1).")

PROG = "tfvideo-predict"
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")
PROGRESS_MIN_VIDEOS = 10


class Fatal(Exception):
    """Stops the run: one line, exit 1."""


def _usage_error(message):
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(2)


def format_prediction(prediction):
    """One line per video: `path<TAB>label:prob label:prob ...`."""
    pairs = " ".join(f"{label}:{p:.4f}" for label, p in zip(prediction.labels, prediction.probabilities))
    return f"{prediction.path}\t{pairs}"


def expand_inputs(args):
    """Files as given and video files under folders (recursively, sorted): (paths, problems, notes).

    Symlinked sub-folders are searched too; a folder reached a second time (a symlink
    loop, or two links to one folder) is searched once, and `notes` say where it was
    skipped. `problems` are (argument, reason) pairs for arguments that are neither a file
    nor a folder, or folders without videos; `notes` are (folder, reason) pairs.
    """
    paths, problems, notes = [], [], []
    for arg in args:
        if os.path.isdir(arg):
            found = []
            searched = {os.path.realpath(arg): arg}  # Real folder -> the path it was searched under.
            for root, dirs, files in os.walk(arg, followlinks=True):
                kept = []
                for name in sorted(dirs):
                    folder = os.path.join(root, name)
                    real = os.path.realpath(folder)
                    if real in searched:
                        notes.append((folder, f"the same folder as {searched[real]} (via a symlink); searched once"))
                        continue
                    searched[real] = folder
                    kept.append(name)
                dirs[:] = kept
                found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(VIDEO_EXTENSIONS)]
            if not found:
                problems.append((arg, f"folder holds no video files ({', '.join(VIDEO_EXTENSIONS)})"))
            paths += found
        elif os.path.exists(arg):
            paths.append(arg)
        else:
            problems.append((arg, "no such file or folder"))
    return paths, problems, notes


def _validate_flags(args):
    if FLAGS.top_k < 1:
        _usage_error(f"--top_k={FLAGS.top_k} must be >= 1")
    if FLAGS.num_clips is not None and FLAGS.num_clips < 1:
        _usage_error(f"--num_clips={FLAGS.num_clips} must be >= 1")
    if not FLAGS.timeout > 0:
        _usage_error(f"--timeout={FLAGS.timeout} must be > 0 seconds")
    if FLAGS.model_version is not None and FLAGS.model_version < 1:
        _usage_error(f"--model_version={FLAGS.model_version} must be >= 1")
    offline = [f for f in ("saved_model", "model_dir") if getattr(FLAGS, f)]
    if len(offline) > 1:
        _usage_error("--saved_model and --model_dir exclude each other; give one")
    if offline:
        clash = [f"--{f}" for f in ("server", "rest", "model", "model_version") if FLAGS[f].present]
        if clash:
            _usage_error(f"--{offline[0]} predicts without a server; {', '.join(clash)} "
                         f"{'does' if len(clash) == 1 else 'do'} not apply")
        if FLAGS.model_dir and FLAGS["signature"].present:
            _usage_error("--signature names a SavedModel signature; --model_dir runs the trained model directly")
    elif not FLAGS.model:
        _usage_error("--model is required with a server (or predict offline with --saved_model / --model_dir)")
    if not args:
        _usage_error("give one or more video files or folders")


# --- the ways to predict: each returns (predict_one(path) -> VideoPrediction, close, server address
# or None, the top-k used) ---
def _top_k(available, what):
    """--top_k, or all `available` labels when --top_k was not given and the model has fewer."""
    if available is None or FLAGS.top_k <= available:
        return FLAGS.top_k
    if FLAGS["top_k"].present:
        raise Fatal(f"--top_k={FLAGS.top_k} is more than {what}")
    return available


class _ServedVersion:
    """A served model version and what requests to it need: its test-time sampler (from its
    own clip spec: versions may sample differently) and its top-k size."""

    def __init__(self, client, version):
        self.version = version
        self.fused = client.fused_spec(FLAGS.model, version)  # A two-stream export: its streams' specs.
        if self.fused is not None:
            _check_fused_num_clips(self.fused, f"model '{FLAGS.model}' version {version}")
            self.sampler = self.fallback = None
        else:
            self.sampler, self.fallback = client.sampler_and_fallback(FLAGS.model, FLAGS.signature, version,
                                                                      FLAGS.num_clips)
        self.available = client.top_k_size(FLAGS.model, FLAGS.signature, version)

    def predict(self, client, path, top_k):
        if self.fused is not None:
            return client.predict_fused_videos([path], FLAGS.model, self.fused, top_k, FLAGS.signature,
                                               self.version)[0]
        return client.predict_video(path, FLAGS.model, top_k=top_k, signature_name=FLAGS.signature,
                                    version=self.version, sampler=self.sampler)


def _check_fused_num_clips(fused, what):
    """--num_clips against each stream of a two-stream export (ValueError naming the export)."""
    for name, spec in fused.specs.items():
        if FLAGS.num_clips is not None and FLAGS.num_clips != spec.num_clips:
            raise ValueError(f"--num_clips={FLAGS.num_clips}, but {what} was exported with {spec.num_clips} "
                             f"clip(s) in its {name} stream (its clip spec)")


def _server_predictor():
    from tqdm import tqdm

    from tfvideo import serving

    if FLAGS.rest:
        target = FLAGS.server or "localhost:8501"
        client = serving.RestClient(target, timeout=FLAGS.timeout)
    else:
        target = FLAGS.server or "localhost:8500"
        client = serving.Client(target, timeout=FLAGS.timeout)
    try:
        served = _ServedVersion(client, client.serving_version(FLAGS.model, FLAGS.model_version))
    except ValueError as e:
        raise Fatal(str(e)) from None
    except Exception as e:  # noqa: BLE001 -- gRPC / HTTP errors: one line naming the server.
        raise Fatal(_server_problem(e, target)) from None
    if served.fallback:
        print(f"{PROG}: warning: {served.fallback}", file=sys.stderr)
    top_k = _top_k(served.available, f"the {served.available} labels model '{FLAGS.model}' returns (its export's "
                                     "--top_k)")
    pinned = FLAGS.model_version is not None

    def follow():
        """Moves to the version the server serves now (its highest available); True if it changed.

        A run outlives model versions: when a newer one is published (and the old one
        unloaded), the next videos go to it, sampled as its own clip spec says.
        """
        nonlocal served
        version = client.serving_version(FLAGS.model)
        if version is None or version == served.version:
            return False
        try:
            newer = _ServedVersion(client, version)
        except ValueError as e:
            raise Fatal(f"model '{FLAGS.model}' version {version}: {e}") from None
        tqdm.write(f"{PROG}: warning: model '{FLAGS.model}' now serves version {version} (was {served.version}); "
                   "the next videos go to it", file=sys.stderr)
        if newer.fallback:
            tqdm.write(f"{PROG}: warning: {newer.fallback}", file=sys.stderr)
        served = newer
        return True

    def predict_one(path):  # Each request is pinned to the version whose clip spec chose its frames.
        if not pinned:
            follow()
        try:
            return served.predict(client, path, top_k)
        except Exception as e:
            # Unloaded between the status check and the request: follow, and send it again.
            if pinned or not _version_gone(e) or not follow():
                raise
        return served.predict(client, path, top_k)

    return predict_one, client.close, target, top_k


def _version_gone(error):
    """The request's model version is not (or no longer) served."""
    import grpc

    from tfvideo import serving

    if isinstance(error, grpc.RpcError):
        return error.code() == grpc.StatusCode.NOT_FOUND
    return isinstance(error, serving.RestError) and error.status == 404


def _server_problem(error, target):
    """One line for a failed server call, naming the server."""
    import grpc

    from tfvideo import serving

    if isinstance(error, ConnectionError):
        return str(error)  # RestClient's message names the address.
    if isinstance(error, grpc.RpcError):
        code = error.code()
        if code == grpc.StatusCode.UNAVAILABLE:
            return f"cannot reach the model server at {target} (gRPC UNAVAILABLE: {error.details()})"
        return f"{target}: {code.name}: {error.details()}"
    if isinstance(error, serving.RestError):
        return f"{target}: HTTP {error.status}: {error.message}"
    return f"{target}: {type(error).__name__}: {error}"


def _is_fatal(error):
    """Errors after which no other video can succeed: the server went away or lost the model."""
    import grpc

    from tfvideo import serving

    if isinstance(error, ConnectionError):
        return True
    if isinstance(error, grpc.RpcError):
        return error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND)
    if isinstance(error, serving.RestError):
        return error.status in (404, 503)
    return False


def _offline_predictor():
    from tfvideo import serving

    source = f"--saved_model={FLAGS.saved_model}" if FLAGS.saved_model else f"--model_dir={FLAGS.model_dir}"
    try:
        if FLAGS.saved_model:
            predictor = serving.LocalPredictor.from_saved_model(FLAGS.saved_model, FLAGS.signature, FLAGS.num_clips)
        else:
            predictor = serving.LocalPredictor.from_model_dir(FLAGS.model_dir, FLAGS.num_clips)
    except (OSError, ValueError) as e:
        message = _one_line(e)
        raise Fatal(message if message.startswith("--") else f"{source}: {message}") from None
    except Exception as e:  # noqa: BLE001 -- e.g. a model.keras Keras cannot load: one line, not a traceback.
        raise Fatal(f"{source}: cannot load the model: {type(e).__name__}: {_one_line(e)}") from None
    if predictor.fallback_reason:
        print(f"{PROG}: warning: {predictor.fallback_reason}", file=sys.stderr)
    top_k = _top_k(len(predictor.labels), f"the model's {len(predictor.labels)} classes")

    def predict_one(path):
        return predictor.predict_video(path, top_k)

    return predict_one, lambda: None, None, top_k


class _CsvWriter:
    """Rows `path,label_1,probability_1,...,label_k,probability_k`, flushed per video."""

    def __init__(self, path, top_k):
        if os.path.isdir(path):
            raise Fatal(f"--output_csv={path} is a folder")
        try:
            self._file = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 -- closed in close().
        except OSError as e:
            raise Fatal(f"--output_csv={path}: {e.strerror or e}") from None
        self._csv = csv.writer(self._file)
        header = ["path"]
        for i in range(1, top_k + 1):
            header += [f"label_{i}", f"probability_{i}"]
        self._csv.writerow(header)

    def write(self, prediction):
        row = [prediction.path]
        for label, p in zip(prediction.labels, prediction.probabilities):
            row += [label, f"{p:.6f}"]
        self._csv.writerow(row)
        self._file.flush()

    def close(self):
        self._file.close()


def _progress(paths):
    from tqdm import tqdm

    if FLAGS.progress == "never":
        disable = True
    elif FLAGS.progress == "always":
        disable = False
    else:
        disable = len(paths) < PROGRESS_MIN_VIDEOS or not sys.stderr.isatty()
    return tqdm(paths, desc=PROG, unit="video", file=sys.stderr, disable=disable, dynamic_ncols=True)


def _one_line(text, limit=500):
    """The first non-empty line of a message (TensorFlow's carry stack notes), shortened."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def predict_all(paths, predict_one, target=None, writer=None):
    """Predicts each path; prints results and one line per bad file. Returns the number of failures.

    `target`: the server's address for messages (None offline). Raises `Fatal` when the
    server goes away (the remaining videos cannot succeed).
    """
    from tqdm import tqdm

    from tfvideo import data as tfv_data

    failures = 0
    for path in _progress(paths):
        try:
            prediction = predict_one(path)
        except tfv_data.VideoDecodeError as e:
            failures += 1
            tqdm.write(f"{PROG}: error: {e.path}: {_one_line(e.reason)}", file=sys.stderr)
            continue
        except Fatal:
            raise
        except Exception as e:  # noqa: BLE001 -- one line per file; the others go on.
            if _is_fatal(e):
                raise Fatal(f"{path}: {_one_line(_server_problem(e, target))}") from None
            failures += 1
            reason = _server_problem(e, target) if target else f"{type(e).__name__}: {getattr(e, 'message', e)}"
            tqdm.write(f"{PROG}: error: {path}: {_one_line(reason)}", file=sys.stderr)
            continue
        tqdm.write(format_prediction(prediction), file=sys.stdout)
        if writer is not None:
            writer.write(prediction)
    return failures


def main(argv):
    args = argv[1:]
    _validate_flags(args)
    paths, problems, notes = expand_inputs(args)
    for folder, reason in notes:
        print(f"{PROG}: warning: {folder}: {reason}", file=sys.stderr)
    for arg, reason in problems:
        print(f"{PROG}: error: {arg}: {reason}", file=sys.stderr)
    if not paths:
        print(f"{PROG}: error: no video files to predict", file=sys.stderr)
        sys.exit(1)
    if FLAGS.sliding_window:
        from export import _sliding_window

        try:
            failures = _sliding_window.run(FLAGS, paths, echo=lambda line: print(
                f"{PROG}: {line}" if line.startswith("error:") else line, file=sys.stderr if line.startswith("error:")
                else sys.stdout, flush=True)) + len(problems)
        except ValueError as e:
            print(f"{PROG}: error: {e}", file=sys.stderr)
            sys.exit(1)
        if failures:
            sys.exit(1)
        return
    writer = close = target = None
    try:
        make = _offline_predictor if FLAGS.saved_model or FLAGS.model_dir else _server_predictor
        predict_one, close, target, top_k = make()
        if FLAGS.output_csv:
            writer = _CsvWriter(FLAGS.output_csv, top_k)
        failures = predict_all(paths, predict_one, target, writer) + len(problems)
    except Fatal as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        if writer is not None:
            writer.close()
        if close is not None:
            close()
    if failures:
        print(f"{PROG}: {failures} of {len(paths) + len(problems)} inputs failed", file=sys.stderr)
        sys.exit(1)


def run():
    from trainers import _cli

    _cli.run(main, "tfvideo-predict", ranges={"top_k": ">=1", "num_clips": ">=1", "timeout": ">0",
                                               "window_seconds": ">0", "stride_seconds": ">0", "plot_classes": ">=1"})


if __name__ == "__main__":
    run()
