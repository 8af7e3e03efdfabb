"""tfvideo-serve: a development gRPC server speaking TF Serving's protocol.

  tfvideo-serve --model_base_path=/tmp/models/tsm --port=8500
  tfvideo-serve --model_config_file=/tmp/models/models.config --port=8500

Serves PredictionService (Predict, GetModelMetadata) and ModelService (GetModelStatus) on
127.0.0.1 unless --host says otherwise; --port=0 picks a free port. Prints one ready line
`tfvideo-serve: serving <names> on <host>:<port>` once the models are loaded.
--rest_api_port=8501 also serves TF Serving's REST API (/v1/models/...) there, and prints
a second line `tfvideo-serve: REST API on <host>:<port>`; 0 (the default, as in TF
Serving) leaves it off.
"""

import os
import sys

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("model_base_path", None, "Directory of numeric version sub-directories (one model).")
flags.DEFINE_string("model_name", None, "Name to serve --model_base_path under (default: its base name).")
flags.DEFINE_string("model_config_file", None, "A models.config (ModelServerConfig text proto) of several models.")
flags.DEFINE_integer("port", 8500, "gRPC port (0: any free port).")
flags.DEFINE_string("host", "127.0.0.1", "Address to bind; 0.0.0.0 exposes the server to the network.")
flags.DEFINE_integer("rest_api_port", 0, "Port of TF Serving's REST API (/v1/models/...); 0 (default): no REST API.")
flags.DEFINE_integer("max_request_bytes", 64 << 20, "Predict requests above this get RESOURCE_EXHAUSTED.")
flags.DEFINE_float("file_system_poll_wait_seconds", 1.0, "How often base paths are scanned for new versions.")
flags.DEFINE_integer("max_workers", 8, "Concurrent request threads.")
flags.DEFINE_bool("warmup", True, "Replay assets.extra/tf_serving_warmup_requests when a version loads.")


def _models():
    from export import _versions

    if bool(FLAGS.model_base_path) == bool(FLAGS.model_config_file):
        raise app.UsageError("exactly one of --model_base_path and --model_config_file is required")
    if FLAGS.model_config_file:
        return _versions.read_models_config(FLAGS.model_config_file)
    name = FLAGS.model_name or os.path.basename(os.path.normpath(FLAGS.model_base_path))
    return {name: FLAGS.model_base_path}


def _start_rest(server):
    """The REST API beside the gRPC server (None when --rest_api_port=0)."""
    if not FLAGS.rest_api_port:
        return None
    from tfvideo import serving

    rest = serving.RestServer(server)
    try:
        rest.start(FLAGS.rest_api_port, FLAGS.host)
    except OSError as e:
        server.stop()
        raise SystemExit(f"tfvideo-serve: error: --rest_api_port={FLAGS.rest_api_port}: cannot bind "
                         f"{FLAGS.host}:{FLAGS.rest_api_port}: {e.strerror or e}") from None
    return rest


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not 0 <= FLAGS.rest_api_port <= 65535:
        raise app.UsageError(f"--rest_api_port={FLAGS.rest_api_port} must be a port number in 1..65535 (0: no REST API)")
    if FLAGS.rest_api_port and FLAGS.rest_api_port == FLAGS.port:
        raise app.UsageError(f"--rest_api_port={FLAGS.rest_api_port} must differ from --port")
    from tfvideo import serving

    server = serving.ModelServer(
        _models(),
        max_request_bytes=FLAGS.max_request_bytes,
        poll_seconds=FLAGS.file_system_poll_wait_seconds,
        max_workers=FLAGS.max_workers,
        warmup=FLAGS.warmup,
    )
    port = server.start(FLAGS.port, FLAGS.host)
    rest = _start_rest(server)
    logging.info("Loaded versions: %s", server.refresh())
    print(f"tfvideo-serve: serving {', '.join(server.model_names)} on {FLAGS.host}:{port}", flush=True)
    if rest is not None:
        print(f"tfvideo-serve: REST API on {FLAGS.host}:{rest.port}", flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        server.stop(grace=1.0)
        sys.exit(0)
    finally:
        if rest is not None:  # The REST API stops with the gRPC server.
            rest.stop(grace=1.0)


def run():
    app.run(main)


if __name__ == "__main__":
    run()
