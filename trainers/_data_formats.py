"""--format and its options, shared by the binaries that read datasets (defined once per process).

A data flag (--train_data, --eval_data, --annotations, --data) names a list, CSV, JSON or
split folder in one of `tfvideo.data.read_dataset`'s layouts; `resolve` turns it into the
one-string source that config.json records and every later step reads the same way.
"""

from absl import flags

from tfvideo import data
from tfvideo.data import _formats, _rawframes, _sources
from trainers import _flags

FLAGS = flags.FLAGS


def define_flags():
    _flags.define(flags.DEFINE_enum, "format", "auto", ("auto",) + _formats.FORMATS,
                  "Layout of the data flags' lists: auto (detected from names and lines), list (path label / "
                  "path,label CSV), mmaction (path label [label ...]), rawframes (frame_dir total_frames label), "
                  "kinetics (official CSV), sthv2 (train.json / validation.json + labels.json), sthv1 / jester "
                  "(*-train.csv id;label + *-labels.csv, JPEG folders), ucf101 (trainlist0N.txt / testlist0N.txt + "
                  "classInd.txt), hmdb51 (the folder of *_test_splitN.txt). See docs/notes/data.md.")
    _flags.define(flags.DEFINE_string, "video_root", None,
                  "Directory the list's videos / frame folders are under (default: the list's directory).")
    _flags.define(flags.DEFINE_integer, "split", None, "HMDB51 split number (1-3; default: 1).", lower_bound=1)
    _flags.define(flags.DEFINE_string, "filename_tmpl", None,
                  "Frame file name of rawframes / sthv1 / jester folders, e.g. img_{:05d}.jpg or img_%05d.jpg "
                  "(default: img_{:05d}.jpg for rawframes, {:05d}.jpg for sthv1 / jester).")
    _flags.define(flags.DEFINE_integer, "start_index", None, "Number of the first frame file (default: 1).",
                  lower_bound=0)
    _flags.define(flags.DEFINE_string, "flow_filename_tmpl", None,
                  "Flow files of rawframes folders, read with --modality=flow / a flow preset: an x,y pair "
                  "(flow_x_{:05d}.jpg,flow_y_{:05d}.jpg, the default: denseflow's layout) or MMAction2's "
                  "flow_{}_{:05d}.jpg (first field x / y).")


def _inherited(name, run_source):
    """--name's value, else the option recorded in the run's source string (evaluate after train)."""
    if FLAGS[name].present or run_source is None:
        return FLAGS[name].value
    parsed = _formats.parse_source(run_source)
    return parsed[2].get(name) if parsed else None


def resolve(path, subset, run_source=None, label_map=None, fallback_format=None):
    """(source string, `DatasetListing` or None) of a data flag's value.

    TFRecord patterns and plain `path label` lists stay as given (listing None for
    TFRecords); other layouts become a `format_source` string. `subset`: "train" or
    "test" (HMDB51's split files hold both). `label_map`: class names (Kinetics' CSV names
    them; formats with a class file are checked against it). `run_source`: the run's
    recorded source, whose options (video root, frame template, ...) apply unless the
    flags give them. `fallback_format`: the format when --format is auto (an eval list of
    a multi-label run is read as mmaction even when its first line has one label; not TFRecords).
    Raises AnnotationError / ValueError naming the file and line.
    """
    if not path:
        return path, None
    fmt = FLAGS.format
    if fmt == "auto" and _sources.is_tfrecord_source(path) and _formats.parse_source(path) is None:
        return path, None  # TFRecords, also in a multi-label run (their shards say so: tfvideo-prepare's manifest).
    if fmt == "auto" and fallback_format:
        fmt = fallback_format
    options = {name: _inherited(name, run_source) for name in ("video_root", "split", "filename_tmpl", "start_index")}
    flow_tmpl = _inherited("flow_filename_tmpl", run_source) if "flow_filename_tmpl" in FLAGS else None
    if flow_tmpl is not None:
        try:
            _rawframes.flow_templates(flow_tmpl)
        except ValueError as e:
            raise ValueError(f"--{e}") from None
    plain = not any(v is not None for v in options.values()) and flow_tmpl is None
    if fmt in ("auto", "list") and plain and _formats.parse_source(path) is None and (
            fmt == "list" or _formats.detect_format(path) == "list"):
        return path, None  # A plain list: read (and its labels checked) as before.
    listing = data.read_dataset(path, fmt, subset=subset, label_map=label_map or None, **options)
    if _formats.parse_source(path) is not None:
        return path, listing
    return data.format_source(path, listing.format, subset=subset if listing.format == "hmdb51" else None,
                              flow_filename_tmpl=flow_tmpl, **options), listing
