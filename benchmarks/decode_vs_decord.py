"""Clip reads from video files: tfvideo (PyAV) against decord, MMAction2's default loader.

  pip install decord      # the benchmark's only extra; the library never imports it
  python benchmarks/decode_vs_decord.py [--work_dir=DIR] [--rounds=5] [--clips=3]
  python benchmarks/decode_vs_decord.py --pipeline [--pipeline_videos=8 --pipeline_clips=48]

The benchmark writes its own real-world-like files (textured, moving, noisy content so
the encoder does real work; a scene cut every 7 s): H.264 720p and 360p mp4 (x264
defaults: GOP up to 250, 3 B-frames), VP9 360p webm, MPEG-4 Part 2 with B-frames in avi,
H.264 540p mkv with a 12-frame GOP, a 10-minute H.264 file and a 1080p one. They stay in
`--work_dir` for the next run (without it: a temp dir, deleted at the end).

Rows: file x sampling x threads. Sampling is TSN/TSM sparse (8 segments, one random frame
each) or I3D dense (32 frames every 2nd frame, random start): `SegmentSampler(8,
training=True)` / `DenseSampler(32, 2, training=True)` with a fixed seed, the same frame
indices for both decoders. A clip read opens the file, indexes it and decodes its frames
to RGB uint8 [T, H, W, 3], as a training loader does per clip:
  tfvideo  tfvideo.data.read_frames(path, indices, num_threads=...)
  decord   decord.VideoReader(path, num_threads=...).get_batch(indices).asnumpy()
with one decoding thread, and with all (num_threads=os.cpu_count() for both). In each
round every row times both decoders in turn (which one goes first alternates), `--clips`
clips each; figures are the median clips/s over rounds, brackets the min-max over rounds,
and the ratio is median tfvideo / median decord (per-round ratios' min-max beside it).
`cpu` is the CPU time per clip of the benchmark process (all threads), which other
processes' load moves much less than wall time; its ratio is decord / tfvideo.

Before timing, each file's first sparse clip and first dense clip are checked against a
sequential decode of the whole file (every frame, in order): `exact` says whether
tfvideo / decord returned exactly those frames.

`--pipeline` also times whole training input pipelines with `--workers` (2) workers on
`--pipeline_videos` 640x360 H.264 files, in turns: tfvideo.data.video_dataset on an
annotation list (mp4 path, num_parallel_calls=2); an MMAction2-style loop (a
multiprocessing Pool(2) of processes, each: decord VideoReader with one thread, the same
TSN sampling, resize short side 256, multi-scale crop, resize 224, flip and normalize in
NumPy/OpenCV as mmcv does); tfvideo.data.video_dataset on TFRecords of the same videos
(prepared once, short side 256).

`--concurrency` (after one `--pipeline` run has written the videos) times the file
decoder's work alone on the same clips sequentially, in `--workers` threads of this
process and in `--workers` spawned processes (in turns), then counts how much of
`video_dataset`'s wall time has 0, 1, 2... reads in flight: whether one process with
tf.data threads can use the cores, or the GIL holds it back.
"""

import multiprocessing
import os
import shutil
import tempfile
import time

import av
import numpy as np
import psutil
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("work_dir", None, "Keeps the generated videos between runs (default: a temp dir, deleted).")
flags.DEFINE_integer("rounds", 5, "Rounds; every row times both decoders once per round.")
flags.DEFINE_integer("clips", 3, "Clips per decoder, row and round.")
flags.DEFINE_list("files", None, "Only these files (names from FILES).")
flags.DEFINE_list("modes", ["sparse", "dense"], "Samplings: sparse (TSN 8 segments), dense (I3D 32x2).")
flags.DEFINE_list("threads", ["1", "all"], "Decoding threads: 1 and/or all.")
flags.DEFINE_bool("check", True, "Check each file's first clips against a sequential decode.")
flags.DEFINE_bool("rows", True, "Time the per-file rows.")
flags.DEFINE_bool("pipeline", False, "Also time the whole input pipelines (video_dataset mp4 / MMAction2-style / TFRecord).")
flags.DEFINE_integer("pipeline_videos", 8, "Videos in the pipeline comparison's annotation list.")
flags.DEFINE_integer("pipeline_clips", 48, "Clips per pipeline and round.")
flags.DEFINE_integer("pipeline_rounds", 3, "Rounds of the pipeline comparison.")
flags.DEFINE_bool("concurrency", False, "Also time the file decoder alone in 1 thread / N threads / N processes, "
                  "and how often video_dataset has N reads in flight (is the one-process design GIL-bound?).")
flags.DEFINE_integer("workers", 2, "Worker processes (MMAction2-style) / parallel calls (tf.data) in the pipeline comparison.")

# name: (height, width, seconds, fps, encoder, encoder options)
FILES = {
    "h264_720p.mp4": (720, 1280, 10, 30, "libx264", {"preset": "fast"}),
    "h264_360p.mp4": (360, 640, 10, 25, "libx264", {"preset": "fast"}),
    "vp9_360p.webm": (360, 640, 10, 25, "libvpx-vp9", {"deadline": "realtime", "cpu-used": "8", "g": "125", "b": "800k"}),
    "mpeg4_bframes.avi": (360, 640, 10, 25, "mpeg4", {"bf": "2", "g": "100", "b": "1500k"}),
    "h264_540p_gop12.mkv": (540, 960, 10, 30, "libx264", {"preset": "fast", "g": "12"}),
    "h264_270p_10min.mp4": (270, 480, 600, 25, "libx264", {"preset": "veryfast"}),
    "h264_1080p.mp4": (1080, 1920, 10, 30, "libx264", {"preset": "fast"}),
}


def _texture(height, width, rng):
    """Smooth random texture (octaves of box-filtered noise), uint8 [height, width, 3]."""
    out = np.zeros((height, width, 3), np.float32)
    for scale, amplitude in [(64, 90), (16, 50), (4, 25), (1, 12)]:
        coarse = rng.random((height // scale + 2, width // scale + 2, 3)).astype(np.float32)
        layer = np.repeat(np.repeat(coarse, scale, 0), scale, 1)[:height, :width]
        if scale > 1:  # Box blur via an integral image: no blocky edges.
            s = np.cumsum(np.cumsum(np.pad(layer, ((scale, 0), (scale, 0), (0, 0))), 0), 1)
            layer = (s[scale:, scale:] - s[:-scale, scale:] - s[scale:, :-scale] + s[:-scale, :-scale]) / scale**2
        out += amplitude * (layer - 0.5)
    return np.clip(out + 122, 0, 243).astype(np.uint8)


def synthetic_frames(height, width, num_frames, fps, seed=0):
    """Yields RGB frames: a texture panned on a Lissajous path, a moving block, grain, scene cuts."""
    rng = np.random.default_rng(seed)
    texture = _texture(2 * height, 2 * width, rng)
    grain = [rng.integers(0, 13, (height, width, 3), np.uint8) for _ in range(7)]
    frame = np.empty((height, width, 3), np.uint8)
    bh, bw = height // 6, width // 6
    for t in range(num_frames):
        scene = t // int(7 * fps)
        x = int(width / 2 * (1 + np.sin(t / 53 + scene)))
        y = int(height / 2 * (1 + np.cos(t / 71 + 2 * scene)))
        np.add(texture[y : y + height, x : x + width], grain[t % 7], out=frame)
        if scene % 2:
            np.subtract(255, frame, out=frame)
        bx, by = (t * 7) % (width - bw), int((height - bh) / 2 * (1 + np.sin(t / 13)))
        frame[by : by + bh, bx : bx + bw] //= 2
        yield frame


def write_file(path, height, width, seconds, fps, encoder, options, seed=0):
    tmp = path + ".part" + os.path.splitext(path)[1]
    with av.open(tmp, mode="w") as container:
        stream = container.add_stream(encoder, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = dict(options)
        for image in synthetic_frames(height, width, int(seconds * fps), fps, seed):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)


def make_files(root, names):
    paths = {}
    for name in names:
        path = os.path.join(root, name)
        if not os.path.exists(path):
            start = time.perf_counter()
            write_file(path, *FILES[name])
            print(f"  wrote {name} ({os.path.getsize(path) / 1e6:.1f} MB) in {time.perf_counter() - start:.0f} s", flush=True)
        paths[name] = path
    return paths


def sequential_frames(path, wanted):
    """{index: frame} for `wanted` display indices, decoding the whole file in order."""
    wanted, out = set(int(i) for i in wanted), {}
    with av.open(path) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                out[i] = frame.to_ndarray(format="rgb24")
    return out


def _thread_count(threads):
    # decord's own "all" (num_threads=0) fails on VP9 ("Thread worker: Error sending packet",
    # decord 0.6.0), so both decoders get the core count.
    return os.cpu_count() if threads == "all" else int(threads)


def tfvideo_reader(threads):
    from tfvideo import data

    num_threads = _thread_count(threads)
    return lambda path, indices: data.read_frames(path, indices, num_threads=num_threads)


def decord_reader(threads):
    import decord

    num_threads = _thread_count(threads)

    def read(path, indices):
        return decord.VideoReader(path, num_threads=num_threads).get_batch(list(indices)).asnumpy()

    return read


def clip_indices(path, modes, clips):
    """{mode: [indices [T]] * clips} with the training samplers and a fixed seed."""
    from tfvideo import data

    num_frames = data.probe_video(path).num_frames
    samplers = {"sparse": data.SegmentSampler(8, training=True), "dense": data.DenseSampler(32, 2, training=True)}
    rng = np.random.default_rng(0)
    return {mode: [samplers[mode](num_frames, rng)[0] for _ in range(clips)] for mode in modes}


def check_exact(name, path, indices):
    """Prints whether each decoder returned the frames a sequential decode gives."""
    wanted = np.concatenate([indices[mode][0] for mode in indices])
    reference = sequential_frames(path, wanted)
    verdict = []
    for label, read in [("tfvideo", tfvideo_reader("1")), ("decord", decord_reader("1"))]:
        ok = all(np.array_equal(read(path, indices[mode][0]), np.stack([reference[int(i)] for i in indices[mode][0]]))
                 for mode in indices)
        verdict.append(f"{label} {'exact' if ok else 'NOT EXACT'}")
    print(f"  {name:22s} {', '.join(verdict)}", flush=True)


def _rate(read, path, clips):
    """(clips/s, CPU ms per clip of this process: all its threads, the decoders' included)."""
    start, cpu = time.perf_counter(), time.process_time()
    for indices in clips:
        read(path, indices)
    return len(clips) / (time.perf_counter() - start), 1000 * (time.process_time() - cpu) / len(clips)


def time_rows(paths):
    rows = [(name, mode, threads) for name in paths for mode in FLAGS.modes for threads in FLAGS.threads]
    indices = {name: clip_indices(path, FLAGS.modes, FLAGS.clips) for name, path in paths.items()}
    if FLAGS.check:
        print("Exactness against a sequential decode (first sparse + first dense clip, 1 thread):")
        for name, path in paths.items():
            check_exact(name, path, indices[name])
    readers = {(lib, t): make(t) for t in FLAGS.threads for lib, make in [("tfvideo", tfvideo_reader), ("decord", decord_reader)]}
    for name, mode, threads in rows:  # Warm-up: page cache, libraries.
        for lib in ("tfvideo", "decord"):
            readers[lib, threads](paths[name], indices[name][mode][0])
    rates = {(row, lib): [] for row in rows for lib in ("tfvideo", "decord")}
    for r in range(FLAGS.rounds):
        start = time.perf_counter()
        for row in rows:
            name, mode, threads = row
            order = ("tfvideo", "decord") if (r + rows.index(row)) % 2 == 0 else ("decord", "tfvideo")
            for lib in order:
                rates[row, lib].append(_rate(readers[lib, threads], paths[name], indices[name][mode]))
        print(f"  round {r + 1}/{FLAGS.rounds}: {time.perf_counter() - start:.0f} s", flush=True)

    print(f"\nclips/s, median over {FLAGS.rounds} rounds [min-max], {FLAGS.clips} clips per turn, {os.cpu_count()} cores; "
          "cpu: median CPU ms per clip (this process, all threads), cpu ratio = decord / tfvideo:")
    print(f"{'file':22s} {'sampling':10s} {'threads':7s} {'tfvideo':>20s} {'decord':>20s} {'ratio':>6s} {'per-round':>9s}  "
          f"{'cpu tfv':>7s} {'decord':>7s} {'ratio':>6s}")
    worst = None
    for row in rows:
        name, mode, threads = row
        t, d = (np.array([r[0] for r in rates[row, lib]]) for lib in ("tfvideo", "decord"))
        ct, cd = (float(np.median([r[1] for r in rates[row, lib]])) for lib in ("tfvideo", "decord"))
        ratio = np.median(t) / np.median(d)
        per_round = t / d
        worst = ratio if worst is None else min(worst, ratio)
        sampling = "sparse 8" if mode == "sparse" else "dense 32x2"
        print(f"{name:22s} {sampling:10s} {threads:7s} {np.median(t):7.2f} [{t.min():5.2f}-{t.max():5.2f}] "
              f"{np.median(d):7.2f} [{d.min():5.2f}-{d.max():5.2f}] {ratio:5.2f}x {per_round.min():4.2f}-{per_round.max():4.2f}  "
              f"{ct:7.0f} {cd:7.0f} {cd / ct:5.2f}x")
    print(f"lowest row ratio tfvideo/decord: {worst:.2f}x (target >= 1.00)")


# ---------------------------------------------------------------- whole pipelines

_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255


def _mmaction_clip(job):
    """One MMAction2-style TSN training clip, float32 [8, 224, 224, 3]: DecordInit(num_threads=1),
    SampleFrames(8 segments), DecordDecode, Resize(short side 256), MultiScaleCrop(scales 1,
    .875, .75, .66, max distort 1, fixed corner/centre offsets), Resize(224), Flip, Normalize
    (OpenCV bilinear resizes, as mmcv; the same steps tfvideo's PreprocessConfig runs)."""
    import cv2
    import decord

    cv2.setNumThreads(1)  # One worker process per core, as the tf.data side.
    path, seed = job
    rng = np.random.default_rng(seed)
    video = decord.VideoReader(path, num_threads=1)
    segment = len(video) / 8
    indices = np.floor(np.arange(8) * segment + rng.random(8) * segment).astype(np.int64)
    frames = video.get_batch(list(indices)).asnumpy()
    h, w = frames.shape[1:3]
    scale = 256 / min(h, w)
    h, w = max(256, round(h * scale)), max(256, round(w * scale))
    frames = [cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) for f in frames]
    sizes = [int(min(h, w) * s) for s in (1.0, 0.875, 0.75, 0.66)]
    pairs = [(i, j) for i in range(4) for j in range(4) if abs(i - j) <= 1]
    i, j = pairs[rng.integers(len(pairs))]
    ch, cw = sizes[i], sizes[j]
    dh, dw = (h - ch) // 4, (w - cw) // 4
    top, left = [(0, 0), (0, 4 * dw), (4 * dh, 0), (4 * dh, 4 * dw), (2 * dh, 2 * dw)][rng.integers(5)]
    clip = np.stack([cv2.resize(f[top : top + ch, left : left + cw], (224, 224), interpolation=cv2.INTER_LINEAR)
                     for f in frames])
    if rng.random() < 0.5:
        clip = clip[:, :, ::-1]
    return ((clip.astype(np.float32) - _MEAN) / _STD).shape


def time_pipelines(root):
    import tensorflow as tf

    from tfvideo import data

    videos = os.path.join(root, "pipeline")
    os.makedirs(videos, exist_ok=True)
    records = []
    for k in range(FLAGS.pipeline_videos):
        path = os.path.join(videos, f"v{k:03d}.mp4")
        if not os.path.exists(path):
            write_file(path, 360, 640, 10, 25, "libx264", {"preset": "fast"}, seed=k)
        records.append(f"{os.path.basename(path)} {k % 4}")
    listing = os.path.join(videos, "train.txt")
    with open(listing, "w") as f:
        f.write("\n".join(records) + "\n")
    shards = os.path.join(videos, "tfr")
    if not tf.io.gfile.glob(os.path.join(shards, "train-*.tfrecord")):
        data.prepare_tfrecords(data.read_annotations(listing), shards, "train", num_shards=4,
                               config=data.PrepareConfig(resize_short=256), workers=FLAGS.workers)
    sampler = data.SegmentSampler(8, training=True)
    config = data.PreprocessConfig(crop_size=224, resize_short=256, train_crop="multi_scale")
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.workers)
    clips = FLAGS.pipeline_clips

    def dataset_rate(source):
        ds = data.video_dataset(source, sampler, config, seed=None, repeat=True, num_parallel_calls=FLAGS.workers)
        iterator = iter(ds)
        next(iterator)
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(clips):
            next(iterator)
        return clips / (time.perf_counter() - start), 1000 * (time.process_time() - cpu) / clips

    paths = [os.path.join(videos, f"v{k:03d}.mp4") for k in range(FLAGS.pipeline_videos)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(FLAGS.workers) as pool:
        pool.map(_mmaction_clip, [(p, 0) for p in paths[: FLAGS.workers]])  # Warm-up: imports.

        workers = [psutil.Process(p.pid) for p in pool._pool]

        def workers_cpu():
            return sum(sum(w.cpu_times()[:2]) for w in workers)

        def mmaction_rate():
            jobs = [(paths[i % len(paths)], i) for i in range(clips)]
            start, cpu = time.perf_counter(), workers_cpu()
            for _ in pool.imap_unordered(_mmaction_clip, jobs):
                pass
            return clips / (time.perf_counter() - start), 1000 * (workers_cpu() - cpu) / clips

        turns = {
            "tfvideo mp4 (video_dataset)": lambda: dataset_rate(listing),
            "MMAction2-style (decord)": mmaction_rate,
            "tfvideo TFRecord (video_dataset)": lambda: dataset_rate(os.path.join(shards, "train-*.tfrecord")),
        }
        rates = {name: [] for name in turns}
        for r in range(FLAGS.pipeline_rounds):
            for name in (list(turns) if r % 2 == 0 else list(turns)[::-1]):
                rates[name].append(turns[name]())
    base = np.median([r[0] for r in rates["MMAction2-style (decord)"]])
    print(f"\nWhole training input pipelines, TSN 8x224 clips/s, {FLAGS.pipeline_videos} videos 640x360 10 s H.264, "
          f"{FLAGS.workers} workers, {clips} clips x {FLAGS.pipeline_rounds} rounds (median [min-max], ratio to "
          "MMAction2-style; CPU ms per clip of the tf.data process / of the Pool's worker processes):")
    for name, results in rates.items():
        values = np.array([r[0] for r in results])
        cpu = np.median([r[1] for r in results])
        print(f"  {name:34s} {np.median(values):7.2f} [{values.min():6.2f}-{values.max():6.2f}]  "
              f"{np.median(values) / base:5.2f}x  {cpu:5.0f} cpu-ms/clip")


def _tsn_read(job):
    """The file decoder's work for one TSN training clip: index, sample 8 segments, decode, scale to 256."""
    from tfvideo import data

    path, seed = job
    with data.VideoReader(path, num_threads=1) as video:
        indices = data.SegmentSampler(8, training=True)(video.num_frames, np.random.default_rng(seed))
        return video.read(indices, short_side=256).shape


def time_concurrency(root):
    """The same clips read sequentially, by N threads of one process and by N spawned processes, in turns;
    then the share of wall time `video_dataset` (num_parallel_calls=N) has 0..N reads in flight."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from tfvideo import data
    from tfvideo.data import _video_io

    n, clips = FLAGS.workers, FLAGS.pipeline_clips
    videos = os.path.join(root, "pipeline")
    paths = sorted(os.path.join(videos, f) for f in os.listdir(videos) if f.endswith(".mp4"))
    if not paths:
        raise app.UsageError(f"--concurrency: no videos in {videos}; run with --pipeline once first.")
    jobs = [(paths[i % len(paths)], i) for i in range(clips)]

    def timed(run, cpu):
        start, cpu0 = time.perf_counter(), cpu()
        run()
        return clips / (time.perf_counter() - start), 1000 * (cpu() - cpu0) / clips

    with multiprocessing.get_context("spawn").Pool(n) as pool, ThreadPoolExecutor(n) as threads:
        pool.map(_tsn_read, jobs[:n])  # Warm-up: imports.
        workers = [psutil.Process(p.pid) for p in pool._pool]
        turns = {
            "1 thread": lambda: timed(lambda: [_tsn_read(j) for j in jobs], time.process_time),
            f"{n} threads": lambda: timed(lambda: list(threads.map(_tsn_read, jobs)), time.process_time),
            f"{n} processes": lambda: timed(lambda: list(pool.imap(_tsn_read, jobs)),
                                            lambda: sum(sum(w.cpu_times()[:2]) for w in workers)),
        }
        _tsn_read(jobs[0])
        rates = {name: [] for name in turns}
        for r in range(FLAGS.pipeline_rounds):
            for name in (list(turns) if r % 2 == 0 else list(turns)[::-1]):
                rates[name].append(turns[name]())
    print(f"\nFile decoder alone (TSN 8 x short side 256, {clips} clips x {FLAGS.pipeline_rounds} rounds; median "
          "[min-max] clips/s, CPU ms per clip):")
    for name, results in rates.items():
        values = np.array([r[0] for r in results])
        print(f"  {name:12s} {np.median(values):6.2f} [{values.min():5.2f}-{values.max():5.2f}]  "
              f"{np.median([r[1] for r in results]):5.0f} cpu-ms/clip")

    lock, state = threading.Lock(), {"in_flight": 0, "since": None, "share": np.zeros(n + 2)}
    read = _video_io.VideoReader.read

    def tick(step):
        with lock:
            now = time.perf_counter()
            if state["since"] is not None:
                state["share"][min(state["in_flight"], n + 1)] += now - state["since"]
            state["since"], state["in_flight"] = now, state["in_flight"] + step

    def counted_read(self, *args, **kwargs):
        tick(1)
        try:
            return read(self, *args, **kwargs)
        finally:
            tick(-1)

    listing = os.path.join(videos, "train.txt")
    config = data.PreprocessConfig(crop_size=224, resize_short=256, train_crop="multi_scale")
    _video_io.VideoReader.read = counted_read
    try:
        iterator = iter(data.video_dataset(listing, data.SegmentSampler(8, training=True), config, repeat=True,
                                           num_parallel_calls=n))
        next(iterator)
        state["share"][:] = 0
        start = time.perf_counter()
        for _ in range(clips):
            next(iterator)
        wall = time.perf_counter() - start
    finally:
        _video_io.VideoReader.read = read
    shares = ", ".join(f"{k}: {s / wall:.2f}" for k, s in enumerate(state["share"]))
    print(f"video_dataset num_parallel_calls={n}: {clips / wall:.2f} clips/s; share of wall time with k reads in "
          f"flight: {shares}")


def main(argv):
    del argv
    names = FLAGS.files or list(FILES)
    unknown = [n for n in names if n not in FILES]
    if unknown:
        raise app.UsageError(f"--files: unknown {unknown}; known: {list(FILES)}")
    root = FLAGS.work_dir or tempfile.mkdtemp(prefix="tfvideo-decord-")
    os.makedirs(root, exist_ok=True)
    try:
        if FLAGS.rows:
            print(f"Videos in {root}:", flush=True)
            time_rows(make_files(root, names))
        if FLAGS.pipeline:
            time_pipelines(root)
        if FLAGS.concurrency:
            time_concurrency(root)
    finally:
        if not FLAGS.work_dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    app.run(main)
