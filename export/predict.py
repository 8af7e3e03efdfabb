"""tfvideo-predict: classify video files with a served model over gRPC.

  tfvideo-predict --server=localhost:8500 --model=tsm video.mp4 [more.mp4 ...]

Decodes and samples each video locally with the test-time sampler, sends JPEG frames to
the model's `jpeg_frames` signature and prints the top-k labels with probabilities.
"""

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("server", "localhost:8500", "host:port of a TF Serving or tfvideo-serve gRPC endpoint.")
flags.DEFINE_string("model", None, "Served model name.")
flags.DEFINE_integer("model_version", None, "A specific version (default: the latest).")
flags.DEFINE_string("signature", "jpeg_frames", "Signature taking string [B, T] JPEG frames.")
flags.DEFINE_integer("top_k", 5, "Labels printed per video.")
flags.DEFINE_integer("num_clips", 1, "Clips per video; must match the export's --num_clips.")
flags.DEFINE_float("timeout", 30.0, "Seconds per request.")


def format_prediction(prediction):
    """One line per video: `path<TAB>label:prob label:prob ...`."""
    pairs = " ".join(f"{label}:{p:.4f}" for label, p in zip(prediction.labels, prediction.probabilities))
    return f"{prediction.path}\t{pairs}"


def main(argv):
    if not FLAGS.model:
        raise app.UsageError("--model is required")
    paths = argv[1:]
    if not paths:
        raise app.UsageError("give one or more video files")
    from tfvideo import serving

    with serving.Client(FLAGS.server, timeout=FLAGS.timeout) as client:
        for path in paths:
            prediction = client.predict_video(
                path, FLAGS.model, top_k=FLAGS.top_k, signature_name=FLAGS.signature,
                version=FLAGS.model_version, num_clips=FLAGS.num_clips,
            )
            print(format_prediction(prediction))


def run():
    from trainers import _cli

    _cli.run(main, "tfvideo-predict", ranges={"top_k": ">=1", "num_clips": ">=1", "timeout": ">0"})


if __name__ == "__main__":
    run()
