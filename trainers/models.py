"""Lists the model presets: task, clip, checkpoint formats; parameters and GFLOPs on request.

  tfvideo-models                           # every preset, one line each (seconds)
  tfvideo-models --params --flops          # with parameters and GFLOPs per clip (minutes on a CPU)
  tfvideo-models --model=tsm_r50           # one preset in detail, its parameters and GFLOPs included

Counting builds each model and traces one clip's forward pass (a few seconds per ResNet-50
preset on a CPU), so the table leaves the counts out unless --params / --flops ask for them;
--model counts them unless --noparams / --noflops. GFLOPs: TensorFlow's profiler count of one
clip's forward graph at the preset's crop size (a multiply-add counts 2). --json prints the
records (`tfvideo.models.describe_preset`) instead of text.
"""

import json

from absl import flags

from tfvideo import models
from trainers import _cli

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "One preset to describe in detail (tfvideo.models.list_presets()).")
flags.DEFINE_boolean("params", None, "Count parameters (builds each model; default: on with --model, off for "
                     "the whole table).")
flags.DEFINE_boolean("flops", None, "Count GFLOPs per clip (traces each model; default: on with --model, off for "
                     "the whole table, where it takes minutes on a CPU).")
flags.DEFINE_integer("num_classes", 400, "Classifier outputs the counts assume.")
flags.DEFINE_boolean("json", False, "Print the records as JSON.")


def _clip_text(clip):
    return (f"{clip['sampling']}, {clip['crop_size']}x{clip['crop_size']} crop (short side "
            f"{clip['resize_short']}), {clip['modality']}")


def _counts_text(record):
    parts = []
    if "params" in record:
        parts.append(f"{record['params'] / 1e6:.2f}M params")
    if "gflops" in record:
        parts.append(f"{record['gflops']:.1f} GFLOPs/clip")
    return ", ".join(parts)


def _detail(record):
    lines = [f"{record['name']}: {record['description']}",
             f"  task: {record['task']} ({record['family']})",
             f"  clip: {_clip_text(record['clip'])}; {record['clip']['frames']} frames a clip"]
    if "params" in record:
        lines.append(f"  parameters: {record['params']:,} ({record['num_classes']} classes)")
    if "gflops" in record:
        lines.append(f"  GFLOPs per clip: {record['gflops']:.2f} (forward, {record['clip']['crop_size']}x"
                     f"{record['clip']['crop_size']}; a multiply-add counts 2)")
    lines.append(f"  checkpoint formats: {', '.join(record['checkpoint_formats']) or 'none'}"
                 + (" (tfvideo-convert --source=...)" if record["checkpoint_formats"] else ""))
    lines.append("  defaults: " + ", ".join(f"{k}={v}" for k, v in sorted(record["defaults"].items())))
    return "\n".join(lines)


def _row(record):
    counts = _counts_text(record)
    formats = ",".join(record["checkpoint_formats"]) or "-"
    return (f"{record['name']:<22} {record['task']:<12} {_clip_text(record['clip']):<58} "
            f"{formats:<26}" + (f" {counts}" if counts else ""))


def main(argv):
    if len(argv) > 1:
        raise _cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.model is not None and FLAGS.model not in models.list_presets():
        raise _cli.UsageError(f"--model={FLAGS.model!r} is not a model preset; available: "
                              f"{', '.join(models.list_presets())}.")
    one = FLAGS.model is not None
    params = FLAGS.params if FLAGS.params is not None else one
    flops = FLAGS.flops if FLAGS.flops is not None else one
    names = [FLAGS.model] if one else models.list_presets()
    records = []
    for name in names:
        record = models.describe_preset(name, params=params, flops=flops, num_classes=FLAGS.num_classes)
        records.append(record)
        if not FLAGS.json and not one:
            if not records[1:]:
                print(f"{'preset':<22} {'task':<12} {'clip':<58} {'checkpoint formats':<26}"
                      + (" counts" if params or flops else ""))
            print(_row(record), flush=True)
    if FLAGS.json:
        print(json.dumps(records[0] if one else records, indent=2))
    elif one:
        print(_detail(records[0]))
    else:
        print("\nOne preset in detail: tfvideo-models --model=NAME; parameters and GFLOPs: --params --flops.")
    return 0


def run():
    _cli.run(main, "tfvideo-models", ranges={"num_classes": ">=1"})


if __name__ == "__main__":
    run()
