"""Two-stream (fused) exports on the client side: a raw video -> both streams' inputs.

A fused export (`tfvideo.export.export_two_stream_saved_model`) takes an RGB clip and a
flow clip. Its clip spec (`clip_spec` signature, `assets.extra/clip_spec.json`) holds each
stream's `tfvideo.data.ClipSpec` and, under `prepare`, how each stream's training frames
were made by `tfvideo-prepare`. From those, a video file is decoded once and both clips are
built as the training records held them:

* the video's frames (resampled to `fps` when prepare did), each resized as prepare did
  (`resize_short`, never upscaled);
* each stream's test-time sampler picks frame indices among them;
* RGB: the frames at those indices, JPEG-encoded as prepare stores them (`jpeg_quality`);
* flow: for index i, `optical_flow` (`flow_method`) from frame i to i + 1 (the last frame
  repeats the flow before it; a one-frame video has zero flow), quantized with
  `flow_bound` (`quantize_flow`), x/y in channels 0/1, JPEG-encoded 4:4:4 as prepare does.
A stream without recorded `resize_short` / `fps` / `jpeg_quality` keeps every frame at its
size and JPEG-encodes at 95 (as the single-stream client sends frames); the flow stream's
`flow_method` and `flow_bound` are required.

So a prediction equals the export's `sequence_example` signature on the video's
`tfvideo-prepare --flow` record, which is what `tfvideo-evaluate --model_dir=RGB,FLOW` fuses.
"""

import dataclasses
import json

import numpy as np

from tfvideo.data import _clip_spec, _video_io

FUSED_KEY = "two_stream"
FLOW_FIELDS = ("flow_method", "flow_bound")
SIGNATURES = ("jpeg_frames", "frames")
DEFAULT_JPEG_QUALITY = 95  # A stream whose prepare settings are not recorded: its frames kept, JPEG at 95.


@dataclasses.dataclass(frozen=True)
class FusedSpec:
    """A fused export's clip spec: `specs` {modality: ClipSpec} (RGB first), `weights` and
    `prepare` {modality: {resize_short, fps, jpeg_quality[, flow_method, flow_bound]}}."""

    specs: dict
    weights: dict
    prepare: dict

    def frame_count(self, modality):
        spec = self.specs[modality]
        sampler = spec.sampler(training=False)
        return sampler.num_views * sampler.clip_length


def is_fused(config):
    """True for a parsed clip spec JSON (a dict) of a two-stream export."""
    return isinstance(config, dict) and FUSED_KEY in config


def parse(config, where):
    """The `FusedSpec` of a fused clip spec dict; ValueError naming `where` and what is missing.

    A spec without the flow stream's `flow_method` / `flow_bound` (an export made before they
    were recorded) cannot make flow from a video: the error names the missing fields.
    """
    try:
        specs = {name: _clip_spec.ClipSpec.from_config(spec) for name, spec in config[FUSED_KEY].items()}
        weights = {name: float(w) for name, w in config.get("fusion_weights", {}).items()}
    except (AttributeError, TypeError, ValueError) as e:
        raise ValueError(f"{where}: not a two-stream clip spec: {e}") from None
    prepare = config.get("prepare") or {}
    for name, spec in specs.items():
        if spec.modality not in ("rgb", "flow"):
            raise ValueError(f"{where}: stream {name!r} reads {spec.modality!r}; videos are classified with rgb and "
                             "flow streams")
        if spec.modality == "flow":
            missing = [k for k in FLOW_FIELDS if k not in prepare.get(name, {})]
            if missing:
                raise ValueError(
                    f"{where}: the clip spec lacks the flow stream's {' and '.join(missing)} (how its training flow "
                    "was computed; exported before they were recorded): re-export with tfvideo-export "
                    "--model_dir=RGB_RUN,FLOW_RUN (it reads them from the flow run's prepare manifest, or pass "
                    "--flow_method and --flow_bound)")
    return FusedSpec(specs, weights, {name: dict(prepare.get(name, {})) for name in specs})


def parse_json(text, where):
    """`parse` of the clip spec JSON text; None when it is not a fused export's."""
    try:
        config = json.loads(text)
    except (TypeError, ValueError):
        return None
    return parse(config, where) if is_fused(config) else None


def _prepared_indices(video, fps):
    """Video frame indices of the prepared frames (all frames, or resampled to `fps` as prepare does)."""
    if fps:
        from tfvideo.data import _prepare

        return _prepare.resample_indices(video.frame_times, video.duration, fps)
    return np.arange(video.num_frames)


def video_inputs(path, fused, signature_name="jpeg_frames"):
    """Both streams' inputs of one video for the export's `jpeg_frames` (JPEG strings, as the
    training records hold them) or `frames` (the same frames before JPEG encoding) signature:
    {f"{modality}_{signature_name}": array [1, frames, ...]}.

    Raises `tfvideo.data.VideoDecodeError` naming the file when it cannot be read.
    """
    from tfvideo.data import _prepare

    if signature_name not in SIGNATURES:
        raise ValueError(f"signature '{signature_name}': a two-stream export classifies videos with "
                         f"{' or '.join(SIGNATURES)}")
    out = {}
    with _video_io.VideoReader(path) as video:
        prepared = {}  # (fps, resize_short) -> (video index of each prepared frame, {prepared index: frame}).

        def source(prepare):
            key = (float(prepare.get("fps") or 0.0), int(prepare.get("resize_short") or 0))
            if key not in prepared:
                prepared[key] = (_prepared_indices(video, key[0]), {}, key[1])
            return prepared[key]

        def frames(prepare, wanted):
            """Prepared (resized) frames at prepared indices `wanted`; each decoded once per video."""
            mapping, done, size = source(prepare)
            todo = sorted({int(i) for i in wanted} - set(done))
            if todo:
                for i, frame in zip(todo, video.read(mapping[todo])):
                    done[i] = _prepare._resize_short(frame, size)
            return [done[int(i)] for i in wanted]

        for name, spec in fused.specs.items():
            prepare = fused.prepare.get(name, {})
            count = len(source(prepare)[0])
            indices = spec.sampler(training=False)(count).reshape(-1)
            quality = int(prepare.get("jpeg_quality", DEFAULT_JPEG_QUALITY))
            if spec.modality == "flow":
                images = _flow_images(indices, count, prepare, frames)
                encoded = [_prepare.encode_jpeg(image, quality, full_chroma=True) for image in images]
            else:
                images = frames(prepare, indices)
                encoded = [_prepare.encode_jpeg(image, quality) for image in images]
            if signature_name == "jpeg_frames":
                out[f"{name}_jpeg_frames"] = np.array([encoded], dtype=object)
            else:
                out[f"{name}_frames"] = np.stack(images)[None]
    return out


def _flow_images(indices, count, prepare, frames):
    """uint8 [H, W, 3] flow images (quantized x, y, zeros) at prepared indices, as prepare stores them."""
    from tfvideo.data import _prepare

    method, bound = prepare["flow_method"], float(prepare["flow_bound"])
    flows = {}
    images = []
    for i in indices:
        i = int(i)
        if i not in flows:
            start = min(i, count - 2)  # Flow i: frame i -> i + 1; the last frame repeats the one before.
            if start < 0:  # One frame: zero flow.
                (frame,) = frames(prepare, [0])
                flow = np.zeros(frame.shape[:2] + (2,), np.float32)
            else:
                pair = frames(prepare, [start, start + 1])
                flow = _prepare.optical_flow(np.stack(pair), method)[0]
            flows[i] = _prepare.flow_image(flow, bound)
        images.append(flows[i])
    return images


def outputs_prediction(path, outputs, index, top_k):
    """`VideoPrediction` of row `index` of a fused export's outputs."""
    from tfvideo.serving import _client

    indices = outputs["top_k_indices"][index][:top_k]
    return _client.VideoPrediction(
        path=str(path),
        labels=tuple(label.decode() if isinstance(label, bytes) else str(label)
                     for label in outputs["top_k_labels"][index][:top_k]),
        probabilities=tuple(float(p) for p in outputs["probabilities"][index][indices]),
        indices=tuple(int(k) for k in indices),
    )
