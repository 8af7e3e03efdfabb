"""tfvideo-serve: a development gRPC server speaking TF Serving's protocol.

  tfvideo-serve --model_base_path=/tmp/models/tsm --port=8500
  tfvideo-serve --model_config_file=/tmp/models/models.config --port=8500

Serves PredictionService (Predict, GetModelMetadata) and ModelService (GetModelStatus) on
127.0.0.1 unless --host says otherwise; --port=0 picks a free port. Prints one ready line
`tfvideo-serve: serving <names> on <host>:<port>` once the models are loaded.

Versions as TF Serving: the latest loadable version only, unless --model_version_policy
says `all` or `specific` (--model_versions=1,3); with --model_config_file each model's
`model_version_policy` in the file applies. On SIGTERM or Ctrl-C the server drains: it stops
accepting requests, lets the in-flight ones finish for up to --drain_grace_period_s, and
exits 0.

--rest_api_port=8501 also serves TF Serving's REST API (/v1/models/...) there, and prints
a second line `tfvideo-serve: REST API on <host>:<port>`; 0 (the default, as in TF
Serving) leaves it off; it drains together with the gRPC server.

Every request's memory is bounded by limits checked before anything is allocated for it:
--max_request_bytes (the message, and the inputs' decoded size from their declared shapes),
--max_frame_pixels / --max_request_pixels (read from image headers before decoding), and for
REST --rest_max_body_bytes, --rest_max_json_depth, --rest_max_json_elements (read from the raw
body before parsing). Over a limit: RESOURCE_EXHAUSTED (gRPC) / 413 (REST), too deep JSON 400.

Streaming exports (`tfvideo-export --streaming`: signatures init_state and step) can also be
stepped with the state held here: a client opens a stream, sends frames with its id and
gets their scores back (gRPC Predict signatures stream_open / step + stream_id / stream_close;
REST :stream_open / :stream_step / :stream_close). A stream not stepped for
--stream_idle_timeout_s expires; at most --max_streams are open (beyond: RESOURCE_EXHAUSTED / 429).
"""

import gc
import os
import signal
import sys
import threading

from absl import flags, logging

from export import _cli
from tfvideo.export import _versions

FLAGS = flags.FLAGS
flags.DEFINE_string("model_base_path", None, "Directory of numeric version sub-directories (one model).")
flags.DEFINE_string("model_name", None, "Name to serve --model_base_path under (default: its base name).")
flags.DEFINE_string("model_config_file", None, "A models.config (ModelServerConfig text proto) of several models.")
flags.DEFINE_integer("port", 8500, "gRPC port (0: any free port).")
flags.DEFINE_string("host", "127.0.0.1", "Address to bind; 0.0.0.0 exposes the server to the network.")
flags.DEFINE_integer("rest_api_port", 0, "Port of TF Serving's REST API (/v1/models/...); 0 (default): no REST API.")
flags.DEFINE_integer("max_request_bytes", 64 << 20,
                     "Predict requests above this, or whose inputs' declared shapes decode to more bytes, get "
                     "RESOURCE_EXHAUSTED.")
flags.DEFINE_integer("max_frame_pixels", 4096 * 4096,
                     "An encoded image input (JPEG/PNG/GIF/BMP/WebP) whose header claims more pixels is refused "
                     "before decoding.")
flags.DEFINE_integer("max_request_pixels", 64 << 20, "The same for all images of one request together.")
flags.DEFINE_integer("rest_max_body_bytes", 0, "REST bodies above this get 413 (0: 4 x --max_request_bytes).")
flags.DEFINE_integer("rest_max_json_depth", 64, "REST bodies nested deeper get 400, checked before parsing.")
flags.DEFINE_integer("rest_max_json_elements", 1 << 23,
                     "REST bodies with more JSON values and lists/objects get 413, checked before parsing.")
flags.DEFINE_float("file_system_poll_wait_seconds", 1.0, "How often base paths are scanned for new versions.")
flags.DEFINE_integer("max_workers", 8, "Concurrent request threads.")
flags.DEFINE_bool("warmup", True, "Replay assets.extra/tf_serving_warmup_requests when a version loads.")
# Versions and shutdown (reliability).
flags.DEFINE_enum("model_version_policy", "latest", ["latest", "all", "specific"],
                  "Versions of --model_base_path to serve: the latest loadable one, all, or --model_versions.")
flags.DEFINE_list("model_versions", [], "With --model_version_policy=specific: the versions to serve, e.g. 1,3.")
flags.DEFINE_float("stream_idle_timeout_s", 300.0,
                   "Streams (streaming exports, state held by the server) not stepped for this many seconds expire.")
flags.DEFINE_integer("max_streams", 256, "Streams open at once; opening more gets RESOURCE_EXHAUSTED (REST 429).")
flags.DEFINE_float("drain_grace_period_s", 10.0,
                   "On SIGTERM/SIGINT: seconds in-flight requests may take to finish before they are cancelled.")


def _version_policy():
    """The --model_version_policy / --model_versions pair as a ModelVersionPolicy proto, validated."""
    from tensorflow_serving.config import file_system_storage_path_source_pb2 as policies

    policy = policies.FileSystemStoragePathSourceConfig.ServableVersionPolicy()
    if FLAGS.model_version_policy != "specific":
        if FLAGS.model_versions:
            _cli.usage_error("serve", f"--model_versions={','.join(FLAGS.model_versions)} needs "
                                      "--model_version_policy=specific")
        getattr(policy, FLAGS.model_version_policy).SetInParent()
        return policy
    if not FLAGS.model_versions:
        _cli.usage_error("serve", "--model_version_policy=specific needs --model_versions, e.g. --model_versions=1,3")
    versions = []
    for text in FLAGS.model_versions:
        if not text.strip().isdigit():
            _cli.usage_error("serve", f"--model_versions={','.join(FLAGS.model_versions)}: {text!r} is not a "
                                      "version number (a non-negative integer)")
        versions.append(int(text))
    if len(set(versions)) != len(versions):
        _cli.usage_error("serve", f"--model_versions={','.join(FLAGS.model_versions)} names a version twice")
    policy.specific.versions.extend(versions)
    return policy


def _models():
    from tensorflow_serving.config import model_server_config_pb2

    from tfvideo.export import _versions

    if bool(FLAGS.model_base_path) == bool(FLAGS.model_config_file):
        _cli.usage_error("serve", "exactly one of --model_base_path and --model_config_file is required")
    if FLAGS.model_config_file:
        if FLAGS.model_version_policy != "latest" or FLAGS.model_versions:
            _cli.usage_error("serve", "--model_version_policy/--model_versions apply to --model_base_path; with "
                                      "--model_config_file set model_version_policy per model in the file")
        return _versions.read_models_config(FLAGS.model_config_file)
    name = FLAGS.model_name or os.path.basename(os.path.normpath(FLAGS.model_base_path))
    config = model_server_config_pb2.ModelServerConfig()
    entry = config.model_config_list.config.add(name=name, base_path=FLAGS.model_base_path,
                                                model_platform="tensorflow")
    entry.model_version_policy.CopyFrom(_version_policy())
    return config


# Every number a user passes is checked before any work, with the wording of every binary
# (`trainers._flags.check_ranges`: `--port=70000 must be in [0, 65535].`).
_RANGES = {"port": "[0,65535]", "rest_api_port": "[0,65535]", "max_request_bytes": ">=1", "max_workers": ">=1",
           "file_system_poll_wait_seconds": ">0", "drain_grace_period_s": ">=0", "max_frame_pixels": ">=1",
           "max_request_pixels": ">=1", "rest_max_body_bytes": ">=0", "rest_max_json_depth": ">=1",
           "rest_max_json_elements": ">=1", "stream_idle_timeout_s": ">0", "max_streams": ">=1"}


def _check_numbers():
    """The flags' ranges, then --rest_api_port against --port; UsageError naming the flag."""
    from trainers import _flags

    _flags.check_ranges(FLAGS, _RANGES)
    if FLAGS.rest_api_port and FLAGS.rest_api_port == FLAGS.port:
        _cli.usage_error("serve", f"--rest_api_port={FLAGS.rest_api_port} must differ from --port (0: no REST API).")


def _stop_on_signals():
    """An Event set by the first SIGTERM/SIGINT; a second one exits at once (status 1) without draining."""
    stop = threading.Event()
    received = []

    def handle(signum, frame):
        received.append(signal.Signals(signum).name)
        if stop.is_set():
            print(f"tfvideo-serve: second {received[-1]}: exiting without waiting for in-flight requests",
                  file=sys.stderr, flush=True)
            os._exit(1)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handle)
    return stop, received


def _start_rest(server):
    """The REST API beside the gRPC server (None when --rest_api_port=0)."""
    if not FLAGS.rest_api_port:
        return None
    from tfvideo import serving

    rest = serving.RestServer(server, max_body_bytes=FLAGS.rest_max_body_bytes or None,
                              max_json_depth=FLAGS.rest_max_json_depth,
                              max_json_elements=FLAGS.rest_max_json_elements)
    try:
        rest.start(FLAGS.rest_api_port, FLAGS.host)
    except OSError as e:
        server.stop()
        _cli.fail("serve", f"--rest_api_port={FLAGS.rest_api_port}: cannot bind {FLAGS.host}:{FLAGS.rest_api_port}: "
                           f"{e.strerror or e}", _cli.RUNTIME)
    return rest


def main(argv):
    if len(argv) > 1:
        _cli.usage_error("serve", f"unexpected arguments: {' '.join(argv[1:])}")
    _check_numbers()
    stop, received = _stop_on_signals()
    from tfvideo import serving

    models = _models()  # Its flag errors are usage errors (exit 2), outside the runtime guard below.
    for entry in models.model_config_list.config:  # Interrupted exports' leftovers (one warning line).
        _versions.remove_stale_staging(entry.base_path)
    try:
        server = serving.ModelServer(
            models,
            max_request_bytes=FLAGS.max_request_bytes,
            poll_seconds=FLAGS.file_system_poll_wait_seconds,
            max_workers=FLAGS.max_workers,
            warmup=FLAGS.warmup,
            max_frame_pixels=FLAGS.max_frame_pixels,
            max_request_pixels=FLAGS.max_request_pixels,
            stream_idle_timeout_s=FLAGS.stream_idle_timeout_s,
            max_streams=FLAGS.max_streams,
        )
        port = server.start(FLAGS.port, FLAGS.host)
        rest = _start_rest(server)
    except (OSError, ValueError) as e:
        _cli.fail("serve", str(e), _cli.RUNTIME)
    logging.info("Serving versions: %s", server.refresh())
    # The objects alive now (TensorFlow's, the loaded models') are left out of later garbage
    # collections, once: a clip sent as JSON numbers makes ~100k lists, and the collections they
    # trigger would otherwise walk the whole heap (4x the parse time). Nothing changes per request.
    gc.freeze()
    print(f"tfvideo-serve: serving {', '.join(server.model_names)} on {FLAGS.host}:{port}", flush=True)
    if rest is not None:
        print(f"tfvideo-serve: REST API on {FLAGS.host}:{rest.port}", flush=True)
    while not stop.wait(0.5):
        pass
    print(f"tfvideo-serve: {received[0]}: draining, {server.in_flight} request(s) in flight, "
          f"grace {FLAGS.drain_grace_period_s:g} s", file=sys.stderr, flush=True)
    rest_stopped = None
    if rest is not None:  # The REST API drains beside the gRPC server, within the same grace period.
        rest_stopped = threading.Thread(target=rest.stop, kwargs={"grace": FLAGS.drain_grace_period_s}, daemon=True)
        rest_stopped.start()
    cut_off = server.drain(FLAGS.drain_grace_period_s)
    if rest_stopped is not None:
        rest_stopped.join(FLAGS.drain_grace_period_s + 1.0)
    if cut_off:
        print(f"tfvideo-serve: {cut_off} request(s) cancelled after the {FLAGS.drain_grace_period_s:g} s grace period",
              file=sys.stderr, flush=True)
        sys.stderr.flush()
        os._exit(0)  # Their handler threads may still be inside TensorFlow; do not wait for them.
    print("tfvideo-serve: drained, exiting", file=sys.stderr, flush=True)
    sys.exit(0)


def run():
    from trainers import _cli

    _cli.run(main, "tfvideo-serve", ranges=_RANGES)


if __name__ == "__main__":
    run()
