"""Input pipeline throughput: TSN training clips/s from mp4 files and from TFRecords.

  python benchmarks/input_pipeline.py [--num_videos=8 --num_frames=96 --clips=48]

Measured in one run on this machine's cores:
  bound    PyAV seek + decode of exactly the frames the sampler picks (no TensorFlow),
           videos decoded in parallel threads, one per core;
  mp4      tfvideo.data.video_dataset over the video files (decode + crop/flip/normalize);
  tfrecord tfvideo.data.video_dataset over SequenceExample shards of the same videos.
The three are timed in turns, `--rounds` times, so a change in the machine's load hits
all of them alike; each figure is the median over rounds (ratios per round in brackets,
and CPU milliseconds per clip of this process, which other processes' load barely moves).
All paths use the same sampler, seed and PreprocessConfig: the same clips.
Targets: tfrecord >= 3x mp4; mp4 >= 70% of the bound. Prints figures and ratios only
(no assertions): the numbers depend on the machine and its load.
"""

import concurrent.futures
import os
import tempfile
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_videos", 8, "Videos written for the benchmark.")
flags.DEFINE_integer("num_frames", 96, "Frames per video.")
flags.DEFINE_integer("height", 256, "Frame height of the source videos.")
flags.DEFINE_integer("width", 340, "Frame width of the source videos.")
flags.DEFINE_integer("gop", 16, "Keyframe interval of the source videos.")
flags.DEFINE_integer("segments", 8, "TSN segments per clip.")
flags.DEFINE_integer("crop", 224, "Training crop size.")
flags.DEFINE_integer("clips", 48, "Clips timed per path and round (after warm-up).")
flags.DEFINE_integer("rounds", 3, "Rounds of timing the three paths in turn.")
flags.DEFINE_integer("threads", 0, "Threads for the decoding bound (0: CPU count).")
flags.DEFINE_string("workdir", None, "Where videos and shards are written (default: a temp dir).")


def make_videos(root, data):
    rng = np.random.default_rng(0)
    records = []
    for k in range(FLAGS.num_videos):
        base = rng.integers(0, 256, (FLAGS.height, FLAGS.width, 3), np.uint8)
        frames = np.stack([np.roll(base, 3 * t, axis=1) for t in range(FLAGS.num_frames)])
        path = os.path.join(root, f"v{k:03d}.mp4")
        data.write_video(path, frames, fps=25, options={"g": str(FLAGS.gop)})
        records.append(data.VideoRecord(path=path, label=k % 4, media_id=f"v{k:03d}"))
    return records


def _timed(run, clips):
    """(clips/s, CPU ms per clip of this process) of `run()`."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return clips / wall, 1000.0 * cpu / clips


def dataset_rate(ds, clips):
    """Times `clips` elements of a fresh iterator after one warm-up element.

    The iterator dies on return, so its prefetching threads stop and do not eat into the
    next path's turn.
    """
    iterator = iter(ds)
    next(iterator)  # Warm-up: thread pools, file handles (functions were traced already).

    def run():
        for _ in range(clips):
            next(iterator)

    return _timed(run, clips)


def decoding_bound(records, sampler, data, clips, threads, rng):
    """Clips/s of PyAV seek+decode of the sampled frames alone, `threads` videos at a time."""
    infos = {r.path: data.probe_video(r.path).num_frames for r in records}
    paths = [records[i % len(records)].path for i in range(clips)]
    jobs = [(path, sampler(infos[path], rng)) for path in paths]

    def decode(job):
        path, indices = job
        data.probe_video(path)  # The pipeline probes each file too.
        return data.read_frames(path, indices).shape

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(decode, jobs[:threads]))  # Warm-up.
        return _timed(lambda: list(pool.map(decode, jobs)), clips)


def main(argv):
    del argv
    if not FLAGS.workdir:
        with tempfile.TemporaryDirectory(prefix="tfvideo-bench-") as root:  # ~60 MB of videos and shards.
            return measure(root)
    return measure(FLAGS.workdir)


def measure(root):
    """Writes the videos and shards under `root`, times the three paths, prints the figures."""
    from tfvideo import data

    threads = FLAGS.threads or os.cpu_count() or 1
    records = make_videos(root, data)
    data.prepare_tfrecords(records, os.path.join(root, "tfr"), "bench", num_shards=2,
                           config=data.PrepareConfig(resize_short=256), workers=1)
    sampler = data.SegmentSampler(FLAGS.segments, training=True)
    config = data.PreprocessConfig(crop_size=FLAGS.crop, resize_short=256)

    rng = np.random.default_rng(0)
    mp4 = data.video_dataset(records, sampler, config, seed=0, repeat=True)
    tfr = data.video_dataset(os.path.join(root, "tfr", "bench-*.tfrecord"), sampler, config, seed=0, repeat=True)
    paths = {
        "bound": lambda: decoding_bound(records, sampler, data, FLAGS.clips, threads, rng),
        "mp4": lambda: dataset_rate(mp4, FLAGS.clips),
        "tfrecord": lambda: dataset_rate(tfr, FLAGS.clips),
    }
    runs = {name: [] for name in paths}
    for _ in range(FLAGS.rounds):
        for name, measure in paths.items():
            runs[name].append(measure())
    rate = {name: np.array([r[0] for r in results]) for name, results in runs.items()}
    cpu = {name: float(np.median([r[1] for r in results])) for name, results in runs.items()}
    median = {name: float(np.median(values)) for name, values in rate.items()}

    def per_round(ratios):
        return "[" + " ".join(f"{r:.2f}" for r in ratios) + "]"

    print(f"TSN {FLAGS.segments}x{FLAGS.crop} training clips, {FLAGS.num_videos} videos of {FLAGS.num_frames} frames "
          f"{FLAGS.width}x{FLAGS.height} (GOP {FLAGS.gop}), {os.cpu_count()} cores, {FLAGS.clips} clips per path "
          f"x {FLAGS.rounds} rounds (median)")
    print(f"  PyAV decoding bound : {median['bound']:8.2f} clips/s  {cpu['bound']:6.1f} cpu-ms/clip")
    print(f"  mp4 files (tf.data) : {median['mp4']:8.2f} clips/s  {cpu['mp4']:6.1f} cpu-ms/clip  "
          f"{median['mp4'] / median['bound']:5.2f}x bound {per_round(rate['mp4'] / rate['bound'])}  (target >= 0.70)")
    print(f"  TFRecords (tf.data) : {median['tfrecord']:8.2f} clips/s  {cpu['tfrecord']:6.1f} cpu-ms/clip  "
          f"{median['tfrecord'] / median['mp4']:5.2f}x mp4   {per_round(rate['tfrecord'] / rate['mp4'])}  (target >= 3.00)")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
