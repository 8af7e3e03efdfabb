"""Phase "assembly": the tf.data video pipelines, source -> parse -> sample -> decode -> preprocess -> batch.

The phases live in their own modules: `_sources` (file lists, TFRecord shards, TFDS),
`_decode` (seeds, sampling, decoding only the sampled frames), `_preprocess` (crops,
flips, normalization, modalities) and `_errors` (bad inputs named, raised or skipped).
This module only puts them together.

Elements are dicts: `video` float32 [views, T, H, W, C] (normalized), `label` int32,
`media_id` string. Training gives one view; testing gives clips x crops views that the
model averages.
"""

import tensorflow as tf

from tfvideo.api._export import tf_export
from tfvideo.data import _clip_spec, _decode, _errors, _formats, _preprocess, _rawframes, _shutdown, _sources


def _assemble(
    ds, decode, *, sampler, preprocess, training, seed, modality, batch_size, repeat, drop_remainder, num_parallel_calls,
    explain=None, deterministic=True,
):
    """The shared tail: seeds -> decode (guarded by `explain` if given) -> drop failures -> preprocess -> batch."""
    _shutdown.pipeline_runs_python()  # Sampling (and file decoding) call Python: iterators go at exit.
    ds = tf.data.Dataset.zip((ds, _decode.element_seeds(seed)))
    if explain is None:
        ds = ds.map(lambda element, s: (decode(element, s), s), num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    else:
        ds = _errors.guarded_decode(ds, decode, explain, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    ds = ds.filter(lambda element, s: element["ok"])
    preprocess_element = _preprocess.element_preprocessor(
        preprocess, training=training, modality=modality, snippet_length=getattr(sampler, "new_length", None)
    )
    ds = ds.map(preprocess_element, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    if repeat:
        ds = ds.repeat()
    if batch_size:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return _errors.RaisesVideoDecodeError(ds.prefetch(tf.data.AUTOTUNE))


def _from_clip_spec(caller, sampler, preprocess, training, modality):
    """(sampler, preprocess, training, modality) of a `ClipSpec` given as `sampler`; else as given."""
    if not isinstance(sampler, _clip_spec.ClipSpec):
        return sampler, preprocess, training, modality
    if preprocess is not None:
        raise ValueError(f"{caller}: a ClipSpec carries the preprocessing; preprocess={preprocess!r} is not taken with it.")
    if modality != "rgb" and modality != sampler.modality:
        raise ValueError(f"{caller}: modality={modality!r} differs from the ClipSpec's {sampler.modality!r}.")
    training = bool(training)
    return sampler.sampler(training), sampler.preprocess, training, sampler.modality


@tf_export("tfvideo.data.video_dataset")
def video_dataset(
    source,
    sampler,
    preprocess=None,
    *,
    batch_size=None,
    training=None,
    label_map=None,
    video_root=None,
    seed=None,
    shuffle_buffer=512,
    on_error="raise",
    repeat=False,
    drop_remainder=False,
    num_parallel_calls=tf.data.AUTOTUNE,
    modality="rgb",
    skipped=None,
    multi_label=None,
    flow_filename_tmpl=None,
):
    """A tf.data pipeline of video clips.

    Args:
      source: an annotation list (`.txt`/`.csv`, decoded with PyAV), a dataset in a
        published layout as a `format_source` string (frame folders are read like
        video files: same sampling, same errors), a TFRecord file pattern of
        SequenceExamples, or a list of `VideoRecord`.
      sampler: a `SegmentSampler` / `DenseSampler` (or a registered sampler); its
        `training` flag picks random or deterministic sampling. Or a `ClipSpec`: its
        sampler for `training` (default False), its preprocessing and its modality.
      preprocess: `PreprocessConfig` (default: its defaults); `False` returns the decoded
        uint8 frames untouched ([V, T, H, W, C], no batching across sizes).
      The other arguments are keyword-only.
      batch_size: batch the elements (None: unbatched).
      training: random crops/flips and shuffling; defaults to `sampler.training`.
      label_map: class names (list or file) for lists with class-name labels.
      seed: makes sampling, augmentation and shuffling reproducible. Unseeded training
        pipelines do not keep element order (`deterministic=False`), which is faster.
      shuffle_buffer: TFRecord sources in training: records held for shuffling, after the
        shard order is shuffled and up to 8 shards are interleaved. A record is a whole
        serialized video (its JPEG frames), so memory is about buffer x record size, e.g.
        512 x 4 MB = 2 GB for 10 s videos at 256 px; lower it on small machines. Lists of
        video files shuffle the whole list (paths only) and ignore it.
      on_error: "raise" (default) stops with a `VideoDecodeError` naming the file (its
        `path` and `reason`; see the class for iteration inside a `tf.function`); "skip"
        logs the file and reason, drops it and records it in `skipped`. For TFRecords the bad
        input is a record that does not parse, has no frames, has a sampled frame that
        does not decode, or has no label in training, or a damaged (truncated/corrupt)
        shard file; the error and `skipped` name the shard and, for a record, its index
        and media id: `(shard, "record 3 (media_id 'x'): <reason>")`. Good records take
        no Python to parse and decode (training's crop runs in OpenCV, see
        `PreprocessConfig`). Without a label a record gets label -1 in evaluation.
      modality: "rgb" (default); "rgb_diff" (TSN RGB difference within each snippet,
        values / 255); "flow" (x/y flow, 2 channels, from TFRecords made with flow or
        from the precomputed flow of frame folders, `flow_filename_tmpl`; normalised by
        `normalize_flow`); "rgb+flow" (TFRecords only; two streams from the same frame indices and the same crop
        and flip: `video` is RGB, `flow` is flow).
      skipped: a `SkippedVideos` that collects what `on_error="skip"` dropped.
      multi_label: the number of classes C of a multi-label list (`path l1 l2 ...`, see
        `read_dataset`): `label` is then float32 [C], 1 at each of the entry's classes
        (MMAction2's `multi_class`; train with sigmoid / binary cross-entropy). Lists of
        files only; a list with several labels on a line needs it.
      flow_filename_tmpl: modality "flow" on a list of frame folders (e.g. a rawframes
        list): the (x, y) flow file templates, as a pair, "x_tmpl,y_tmpl" or MMAction2's
        `flow_{}_{:05d}.jpg` (default `flow_x_{:05d}.jpg`, `flow_y_{:05d}.jpg`, the
        `denseflow` layout; also a `format_source` option). The files hold quantized flow
        as `prepare_tfrecords(flow=True)` stores it (128 = no motion); the list's frame
        count is the number of flow frames, and the start index is the list's.

    Returns:
      A dataset of dicts: `video` float32 [V, T, S, S, C], `label` int32 (float32 [C]
      with `multi_label`), `media_id` (and `flow` [V, T, S, S, 2] for "rgb+flow").
    """
    sampler, preprocess, training, modality = _from_clip_spec("video_dataset", sampler, preprocess, training, modality)
    _errors.check_on_error("video_dataset", on_error)
    _preprocess.check_modality(modality, preprocess)
    if preprocess is None:
        preprocess = _preprocess.PreprocessConfig()
    training = sampler.training if training is None else training
    # Unseeded training has no order to keep: let fast elements overtake slow ones.
    deterministic = seed is not None or not training
    tail = dict(sampler=sampler, preprocess=preprocess, training=training, seed=seed, modality=modality,
                batch_size=batch_size, repeat=repeat, drop_remainder=drop_remainder,
                num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    if multi_label is not None and (isinstance(multi_label, bool) or not isinstance(multi_label, int) or multi_label < 1):
        raise ValueError(f"video_dataset: multi_label={multi_label!r} must be the number of classes (an integer >= 1).")
    if multi_label and (preprocess is not False and preprocess.flip_label_map is not None):
        raise ValueError("video_dataset: flip_label_map remaps one label; it is not taken with multi_label.")
    if _sources.is_tfrecord_source(source):  # With multi_label: shards of a multi-label list (tfvideo-prepare).
        ds = _sources.tfrecord_source(source, training=training, seed=seed, deterministic=deterministic)
        decode = _decode.record_decoder(sampler, modality=modality, training=training, multi_label=multi_label)
        explain = _errors.record_explainer(decode, sampler, modality=modality, training=training, on_error=on_error,
                                           skipped=skipped, multi_label=multi_label)
        if training:
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        return _assemble(ds, decode, explain=explain, **tail)
    if modality == "rgb+flow":
        raise ValueError(f"modality={modality!r} reads flow frames from TFRecords made with flow; {source!r} is a video "
                         "list (a list of frame folders gives modality 'flow' from their flow files).")
    if isinstance(source, (list, tuple)):
        records = source
    else:  # A list in any layout (detected; a multi-label one is MMAction2's), or a format_source string.
        fmt = "mmaction" if multi_label and _formats.parse_source(source) is None else "auto"
        records = _formats.read_dataset(source, fmt, video_root=video_root, label_map=label_map).records
        if flow_filename_tmpl is None:
            flow_filename_tmpl = (_formats.parse_source(source) or (None, None, {}))[2].get("flow_filename_tmpl")
    flow_templates = None
    if modality == "flow":
        flow_templates = _rawframes.flow_templates(flow_filename_tmpl)
        video = next((r for r in records if not _rawframes.is_frame_record(r)), None)
        if video is not None:
            raise ValueError(f"video_dataset: modality='flow' reads the flow files of frame folders (or TFRecords made "
                             f"with flow); {video.path} is a video file (prepare it with flow: tfvideo-prepare --flow).")
    multi = next((r for r in records if r.labels is not None), None)
    if multi is not None and not multi_label:
        raise ValueError(f"video_dataset: {multi.media_id} has several labels {list(multi.labels)}; multi-label "
                         "clips need multi_label=<number of classes> (a multi-hot label for sigmoid / binary "
                         "cross-entropy)")
    # Training resizes in the decoder (within a level or two of TensorFlow's resize, much
    # cheaper); evaluation keeps TensorFlow's, so it equals the exported model's transform.
    # Flow is not: it is resized by preprocessing, as flow from TFRecords.
    short_side = (preprocess.resize_short or None) if preprocess and training and not flow_templates else None
    ds = _sources.file_source(records, multi_label)
    decode = _decode.file_decoder(sampler, on_error=on_error, skipped=skipped, short_side=short_side,
                                  flow_templates=flow_templates)
    if training:
        ds = ds.shuffle(len(records), seed=seed, reshuffle_each_iteration=True)
    return _assemble(ds, decode, **tail)


@tf_export("tfvideo.data.tfds_dataset")
def tfds_dataset(
    name_or_builder,
    split,
    sampler,
    preprocess=None,
    *,
    batch_size=None,
    training=None,
    seed=None,
    data_dir=None,
    video_key="video",
    label_key="label",
    shuffle_buffer=64,
    repeat=False,
    drop_remainder=False,
    num_parallel_calls=tf.data.AUTOTUNE,
    on_error="raise",
    skipped=None,
):
    """A `tensorflow_datasets` video dataset, prepared locally, as `video_dataset` elements.

    Frames stay encoded until sampled (TFDS `SkipDecoding`), so only the sampled frames
    are decoded. Nothing is downloaded: the dataset must already be prepared in
    `data_dir` (e.g. `ucf101`, whose features are `video` uint8 [T, H, W, 3] and `label`).

    Args:
      name_or_builder: a registered dataset name (e.g. "ucf101/ucf101_1_256") or a
        `tfds.core.DatasetBuilder`.
      split: TFDS split, e.g. "train" or "test[:10%]".
      video_key, label_key: feature names of the frames and the class id.
      on_error, skipped: as in `video_dataset`; an example whose frames do not decode (or
        that has none) is named by dataset, split and TFDS id.
      Other arguments as in `video_dataset`.

    Returns:
      A dataset of dicts: `video` float32 [V, T, S, S, 3] (uint8 frames with
      `preprocess=False`), `label` int32, `media_id` (TFDS id of the example).
    """
    sampler, preprocess, training, _ = _from_clip_spec("tfds_dataset", sampler, preprocess, training, "rgb")
    _errors.check_on_error("tfds_dataset", on_error)
    if preprocess is None:
        preprocess = _preprocess.PreprocessConfig()
    training = sampler.training if training is None else training
    ds, parse, source = _sources.tfds_source(name_or_builder, split, training=training, seed=seed, data_dir=data_dir,
                                             video_key=video_key, label_key=label_key)
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(parse)
    decode = _decode.encoded_decoder(sampler, "rgb")
    explain = _errors.example_explainer(decode, sampler, source=source, on_error=on_error, skipped=skipped)
    return _assemble(ds, decode, sampler=sampler, preprocess=preprocess, training=training, seed=seed, modality="rgb",
                     batch_size=batch_size, repeat=repeat, drop_remainder=drop_remainder,
                     num_parallel_calls=num_parallel_calls, explain=explain)


@tf_export("tfvideo.data.to_supervised")
def to_supervised(dataset):
    """Maps dict elements to `(video, label)` pairs for `keras.Model.fit`."""
    return dataset.map(lambda e: (e["video"], e["label"]), num_parallel_calls=tf.data.AUTOTUNE)
