"""tfvideo-export: a trained model_dir -> `<export_dir>/<model_name>/<version>/` for TF Serving.

  tfvideo-export --model_dir=runs/tsm --export_dir=/tmp/models --model_name=tsm \
      --input_type=jpeg_frames,frames,sequence_example --num_clips=1 --num_crops=1

Two-stream (an RGB and a flow run -> one SavedModel returning the fused scores):

  tfvideo-export --model_dir=runs/rgb,runs/flow --fusion_weights=1,1.5 --export_dir=/tmp/models \
      --model_name=two_stream --input_type=sequence_example,frames,jpeg_frames
"""

from absl import flags, logging

from export import _cli
from tfvideo.export import _saved_model

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Trained model_dir (config.json, labels.txt, model.keras).")
flags.DEFINE_string("checkpoint", None, "Export this .keras or .weights.h5 checkpoint (a directory: its newest) instead of model.keras.")
flags.DEFINE_string("export_dir", None, "Export root: writes <export_dir>/<model_name>/<version>/ and models.config.")
flags.DEFINE_string("model_name", None, "Served model name (default: the model_dir's base name).")
flags.DEFINE_list(
    "input_type", ["jpeg_frames", "frames", "sequence_example"],
    f"Signatures to export, any of {', '.join(_saved_model.INPUT_TYPES)}; the first is serving_default.",
)
flags.DEFINE_list("fusion_weights", None, "With two comma-separated --model_dir runs (RGB, flow): the weight of "
                  "each run's probabilities in the fused score (default 1,1.5 as TSN).")
flags.DEFINE_enum("flow_method", None, ["dis", "tvl1", "farneback"], "Two-stream: the flow run's flow method "
                  "(tfvideo-prepare --flow_method), recorded for clients computing flow from raw videos (default: "
                  "read from the prepare manifest beside its training data).")
flags.DEFINE_float("flow_bound", None, "Two-stream: the flow run's tfvideo-prepare --flow_bound (default: from its "
                   "prepare manifest).")
flags.DEFINE_integer("num_clips", 1, "Test-time clips averaged inside the graph.")
flags.DEFINE_enum("num_crops", "1", ["1", "3", "10"], "Test-time spatial crops averaged inside the graph.")
flags.DEFINE_integer("top_k", 5, "Length of top_k_indices / top_k_labels.")
flags.DEFINE_integer("version", None, "Version number (default: one above the highest present).")
flags.DEFINE_bool("warmup", True, "Write assets.extra/tf_serving_warmup_requests.")
flags.DEFINE_bool("streaming", False, "Online TSM recognizers: a streaming SavedModel (init_state, step: one frame "
                  "at a time, shift buffers as state) instead of the clip signatures.")
flags.DEFINE_bool("litert", False, "Online TSM recognizers: LiteRT files <export_dir>/<model_name>.<q>.tflite of "
                  "the step for each --litert_quantization (+ a .json description beside each).")
flags.DEFINE_multi_enum("litert_quantization", ["float32", "int8"], ["float32", "int8"],
                        "LiteRT files to write: float32 and/or int8 (post-training quantisation).")
flags.DEFINE_integer("average_last", None, "Streaming/LiteRT: mean of the last N frames' logits (default: the "
                     "model's num_segments, which reproduces the offline model on a stream's first N frames).")
flags.DEFINE_string("representative_data", None, "int8 calibration clips (default: the run's train_data).")
flags.DEFINE_integer("representative_clips", 32, "Clips streamed through the float model to calibrate int8.")
flags.DEFINE_string("parity_data", None, "LiteRT parity with Keras is printed on this set (default: the run's eval_data).")
flags.DEFINE_integer("parity_clips", 64, "Clips of the evaluation set the LiteRT parity is measured on (0: none).")
flags.DEFINE_string(
    "serving_base_path", None,
    "Directory the model server sees export_dir as (e.g. /models in a container), for models.config.",
)


def _check_flags(argv):
    if len(argv) > 1:
        _cli.usage_error("export", f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.export_dir:
        _cli.usage_error("export", "--export_dir is required")
    if not FLAGS.model_dir and not FLAGS.checkpoint:
        _cli.usage_error("export", "--model_dir or --checkpoint is required")
    if FLAGS.version is not None and FLAGS.version < 0:  # --num_clips and --top_k: `ranges` in run().
        _cli.usage_error("export", f"--version={FLAGS.version} must be >= 0.")
    try:
        _saved_model._normalize_input_types(FLAGS.input_type)
    except ValueError as e:
        _cli.usage_error("export", str(e))


def _export_two_stream():
    from tfvideo.export import _two_stream

    input_types = FLAGS.input_type
    if not FLAGS["input_type"].present:
        input_types = list(_two_stream.FUSED_INPUT_TYPES)
    try:
        weights = [float(w) for w in FLAGS.fusion_weights or (1.0, 1.5)]
    except ValueError:
        _cli.usage_error("export", f"--fusion_weights={','.join(FLAGS.fusion_weights)}: not numbers")
    return _two_stream.export_two_stream_saved_model(
        FLAGS.export_dir, FLAGS.model_dir.split(","), weights, model_name=FLAGS.model_name, input_types=input_types,
        num_clips=FLAGS.num_clips, num_crops=int(FLAGS.num_crops), top_k=FLAGS.top_k, version=FLAGS.version,
        serving_base_path=FLAGS.serving_base_path, warmup=FLAGS.warmup, flow_method=FLAGS.flow_method,
        flow_bound=FLAGS.flow_bound)


def main(argv):
    _check_flags(argv)
    if FLAGS.streaming or FLAGS.litert:
        if not FLAGS.model_dir:
            _cli.usage_error("export", "--streaming/--litert need --model_dir")
        from export import _stream_export

        try:
            written = _stream_export.export(FLAGS, FLAGS.model_dir, FLAGS.export_dir, FLAGS.model_name)
        except (OSError, ValueError) as e:
            _cli.fail("export", str(e), _cli.RUNTIME)
        print("\n".join(written))
        return
    if FLAGS.model_dir and "," in FLAGS.model_dir:
        try:
            result = _export_two_stream()
        except (OSError, ValueError) as e:
            _cli.fail("export", str(e), _cli.RUNTIME)
        print(result.path)
        return
    for name in ("fusion_weights", "flow_method", "flow_bound"):
        if FLAGS[name].value is not None:
            _cli.usage_error("export", f"--{name} needs two comma-separated --model_dir runs (RGB, flow)")
    try:
        result = _saved_model.export_saved_model(
            FLAGS.export_dir,
            model_dir=FLAGS.model_dir,
            checkpoint=FLAGS.checkpoint,
            model_name=FLAGS.model_name,
            input_types=FLAGS.input_type,
            num_clips=FLAGS.num_clips,
            num_crops=int(FLAGS.num_crops),
            top_k=FLAGS.top_k,
            version=FLAGS.version,
            warmup=FLAGS.warmup,
            serving_base_path=FLAGS.serving_base_path,
        )
    except (OSError, ValueError) as e:  # Missing model, bad flag value, unwritable export dir, ...
        _cli.fail("export", str(e), _cli.RUNTIME)
    logging.info("models.config: %s", result.models_config)
    print(result.path)  # The binary's output: the new version directory.


def run():
    from trainers import _cli

    _cli.run(main, "tfvideo-export", ranges={"num_clips": ">=1", "top_k": ">=1", "average_last": ">=1",
                                              "representative_clips": ">=1", "parity_clips": ">=0",
                                              "flow_bound": ">0"})


if __name__ == "__main__":
    run()
