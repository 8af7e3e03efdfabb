"""The dataset conversion of `prepare_tfrecords` as an Apache Beam pipeline.

Same records in, same SequenceExamples and shard names out
(`<name>-NNNNN-of-MMMMM.tfrecord`), so a local run and a Dataflow/Flink/Spark run give
interchangeable shards. Beam writes every shard to a temporary location and moves it
into place when the job finishes, so a failed job leaves no complete-looking shard.
Needs the `beam` extra (`pip install tfvideo[beam]`); importing tfvideo does not.
"""

import json
import os

from tfvideo.api._export import tf_export
from tfvideo.data import _prepare, _video_io


def _import_beam():
    try:
        import apache_beam as beam
    except ImportError as e:
        raise ImportError("The Beam preparation pipeline needs apache-beam: pip install 'tfvideo[beam]'.") from e
    return beam


def _failures_file(output_dir, name):
    return os.path.join(output_dir, f"{name}-failures.jsonl")


@tf_export("tfvideo.data.beam_prepare_pipeline")
def beam_prepare_pipeline(pipeline, records, output_dir, name, num_shards, config=None, label_names=None,
                          overwrite=False):
    """Adds video -> SequenceExample conversion and the shard/failure writers to `pipeline`.

    Like `prepare_tfrecords`, it first records the inputs in `<name>-manifest.json` and
    raises `ShardSetError` when shards of `name` built from other inputs (or another
    `num_shards`) are there, unless `overwrite=True`, which removes them. Shards built
    from the same inputs are rewritten by the job.

    Args:
      pipeline: an `apache_beam.Pipeline` (any runner).
      records: `VideoRecord`s (see `read_annotations`).
      output_dir, name, num_shards: shards are `<output_dir>/<name>-NNNNN-of-MMMMM.tfrecord`.
      config: `PrepareConfig`.
      label_names: class names stored as `clip/label/string`.
      overwrite: remove every existing shard of `name` first instead of refusing shards
        built from other inputs.

    Returns:
      The PCollection of failures, JSON lines `{"path", "reason"}` (also written to
      `<output_dir>/<name>-failures.jsonl`).
    """
    beam = _import_beam()
    config = config or _prepare.PrepareConfig()
    records = list(records)
    num_shards = _prepare.check_count("num_shards", num_shards)
    if num_shards is None:
        raise ValueError("beam_prepare_pipeline: num_shards is required.")
    _prepare.claim_shard_set(output_dir, name, _prepare.build_manifest(records, num_shards, config, label_names),
                             overwrite)

    class ToSequenceExample(beam.DoFn):
        def process(self, record):
            try:
                example = _prepare.video_to_sequence_example(record, config, label_names)
            except _video_io.VideoDecodeError as e:
                yield beam.pvalue.TaggedOutput("failures", json.dumps({"path": record.path, "reason": e.reason}))
                return
            except Exception as e:  # noqa: BLE001 -- one bad video must not fail the job.
                reason = f"{type(e).__name__}: {e}"
                yield beam.pvalue.TaggedOutput("failures", json.dumps({"path": record.path, "reason": reason}))
                return
            yield example.SerializeToString()

    converted = (
        pipeline
        | f"{name}/Records" >> beam.Create(records)
        | f"{name}/Reshuffle" >> beam.Reshuffle()
        | f"{name}/Convert" >> beam.ParDo(ToSequenceExample()).with_outputs("failures", main="examples")
    )
    _ = converted.examples | f"{name}/WriteShards" >> beam.io.WriteToTFRecord(
        os.path.join(output_dir, name), file_name_suffix=".tfrecord", num_shards=num_shards
    )
    _ = converted.failures | f"{name}/WriteFailures" >> beam.io.WriteToText(
        _failures_file(output_dir, name), shard_name_template="", num_shards=1
    )
    return converted.failures


@tf_export("tfvideo.data.run_beam_prepare")
def run_beam_prepare(records, output_dir, name, num_shards=None, config=None, label_names=None, pipeline_args=None,
                     overwrite=False):
    """Runs `beam_prepare_pipeline` to completion (DirectRunner unless `pipeline_args` say).

    Args:
      pipeline_args: Beam command-line options, e.g. `["--runner=DataflowRunner", ...]`.
      overwrite: replace shards of `name` built from other inputs (see
        `prepare_tfrecords`) instead of raising `ShardSetError`.

    Returns:
      The same dict as `prepare_tfrecords`: `shards`, `skipped_shards` (always empty:
      a Beam job rewrites its output), `failures`, `written`.
    """
    beam = _import_beam()
    from apache_beam.options.pipeline_options import PipelineOptions

    records = list(records)
    num_shards = _prepare.check_count("num_shards", num_shards) or max(1, (len(records) + 99) // 100)
    os.makedirs(output_dir, exist_ok=True)
    options = PipelineOptions(list(pipeline_args or ["--runner=DirectRunner"]))
    with beam.Pipeline(options=options) as pipeline:
        beam_prepare_pipeline(pipeline, records, output_dir, name, num_shards, config, label_names, overwrite)
    shards = _prepare.shard_paths(output_dir, name, num_shards)
    # The job rewrote every shard; completion markers of an earlier local run would make a
    # later local rerun skip these shards and report that run's failures.
    for shard in shards:
        _prepare.remove_completion_marker(shard)
    failures = []
    path = _failures_file(output_dir, name)
    if os.path.exists(path):
        with open(path) as f:
            failures = [json.loads(line) for line in f if line.strip()]
    failures.sort(key=lambda failure: failure["path"])
    return {
        "shards": shards,
        "skipped_shards": [],
        "failures": failures,
        "written": len(records) - len(failures),
    }
