"""Converts a published checkpoint into a tfvideo model saved as a .keras file.

  tfvideo-convert --source=mmaction2 --checkpoint=tsm_r50_kinetics400.pth --model=tsm_r50 \\
      --num_classes=400 --output=tsm_r50_k400.keras
  tfvideo-convert --source=tdn --checkpoint=tdn_r50_k400.pth.tar --model=tdn_r50 --num_classes=400 \\
      --output=tdn_r50_k400.keras   # add --tdn_revision=2020 for checkpoints of their 2020 code
  tfvideo-convert --source=torchvision --checkpoint=resnet50-11ad3fa6.pth --model=tsm_r50 \\
      --num_classes=10 --allow_missing=head --output=tsm_r50_imagenet.keras

The .keras file opens with `keras.saving.load_model`; called on a normalised clip
[B, T, H, W, 3] it returns the reference's logits. `tfvideo-train --init_checkpoint=` starts
from it. Exit status 2 for a checkpoint that does not fit (the message names the first
mismatched key and both shapes); nothing is written at --output then.
"""

import os

from absl import flags

from tfvideo import models, online
from tfvideo.layers._temporal_difference import tdn_revision
from tfvideo.models import _presets
from trainers import _cli

FLAGS = flags.FLAGS
flags.DEFINE_string("source", None, "Checkpoint format: torchvision, mmaction2, tsm, ... "
                    "(tfvideo.models.list_checkpoint_formats()).")
flags.DEFINE_string("checkpoint", None, "The checkpoint file.")
flags.DEFINE_string("model", None, "Model preset name (tfvideo.models.list_presets()).")
flags.DEFINE_integer("num_classes", None, "Classes of the model (the checkpoint's, or another with "
                     "--allow_missing=head).")
flags.DEFINE_integer("num_segments", None, "Segments (2D recognizers) or frames (I3D); default: the preset's.")
flags.DEFINE_integer("feature_dim", None, "Online detectors (--source=trn_pytorch|oadtr): per-chunk feature width.")
flags.DEFINE_integer("width", None, "Backbone width override (default: the preset's standard width).")
flags.DEFINE_string("tdn_revision", None, "TDN presets: the authors' code the network follows, 2021 (MCG-NJU/TDN "
                    "since bcf28d9, their current model zoo; the default) or 2020 (their December 2020 release).")
flags.DEFINE_list("allow_missing", [], "Parts the checkpoint may lack or hold with another shape: head.")
flags.DEFINE_string("output", None, "The .keras file to write.")


def _validate():
    for name in ("source", "checkpoint", "model", "num_classes", "output"):
        if getattr(FLAGS, name) is None:
            raise ValueError(f"--{name} is required.")
    if FLAGS.source not in models.list_checkpoint_formats():
        raise ValueError(f"--source={FLAGS.source!r} is not a checkpoint format; available: "
                         f"{', '.join(models.list_checkpoint_formats())}.")
    if FLAGS.model not in models.list_presets() and FLAGS.model not in online.list_detectors():
        raise ValueError(f"--model={FLAGS.model!r} is not a model preset or online detector; available: "
                         f"{', '.join(models.list_presets() + online.list_detectors())}.")
    for name in ("num_classes", "num_segments", "width", "feature_dim"):
        value = getattr(FLAGS, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name}={value} must be >= 1.")
    if not FLAGS.output.endswith(".keras"):
        raise ValueError(f"--output={FLAGS.output}: must end with .keras.")
    if FLAGS.tdn_revision is not None:
        builder = _presets.preset_builder(FLAGS.model) if FLAGS.model in models.list_presets() else None
        if not (isinstance(builder, type) and issubclass(builder, models.TDN)):
            raise ValueError(f"--tdn_revision applies to TDN presets, not --model={FLAGS.model}.")
        tdn_revision(FLAGS.tdn_revision)
    if not os.path.isfile(FLAGS.checkpoint):
        raise ValueError(f"--checkpoint={FLAGS.checkpoint}: no such file.")


def main(argv):
    if len(argv) > 1:
        raise _cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        _validate()
        overrides = {"width": FLAGS.width} if FLAGS.width else {}
        if FLAGS.feature_dim:
            overrides["feature_dim"] = FLAGS.feature_dim
        if FLAGS.tdn_revision is not None:
            overrides["tdn_revision"] = FLAGS.tdn_revision
        model, report = models.convert_checkpoint(FLAGS.source, FLAGS.checkpoint, FLAGS.model, FLAGS.num_classes,
                                                  FLAGS.num_segments, FLAGS.allow_missing, **overrides)
    except ValueError as e:  # A checkpoint or flag that does not fit: exit 2, nothing written.
        raise _cli.UsageError(str(e)) from e
    models.save_converted(model, FLAGS.output)
    print(report.summary())
    print(f"wrote {FLAGS.output}")
    return 0


def run():
    _cli.run(main, "tfvideo-convert")


if __name__ == "__main__":
    run()
