"""Input pipeline throughput: TSN training clips/s from mp4 files and from TFRecords.

  python benchmarks/input_pipeline.py [--num_videos=8 --num_frames=96 --clips=48]

Measured in one run on this machine's cores:
  bound    PyAV seek + decode of exactly the frames the sampler picks (no TensorFlow),
           videos decoded in parallel threads, one per core;
  mp4      tfvideo.data.video_dataset over the video files (decode + crop/flip/normalize);
  tfrecord tfvideo.data.video_dataset over SequenceExample shards of the same videos.
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
flags.DEFINE_integer("clips", 48, "Clips timed per path (after warm-up).")
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


def time_dataset(ds, clips):
    it = iter(ds)
    next(it)  # Warm-up: graph tracing, thread pools, file handles.
    start = time.perf_counter()
    for _ in range(clips):
        next(it)
    return clips / (time.perf_counter() - start)


def decoding_bound(records, sampler, data, clips, threads):
    """Clips/s of PyAV seek+decode of the sampled frames alone, `threads` videos at a time."""
    rng = np.random.default_rng(0)
    infos = {r.path: data.probe_video(r.path).num_frames for r in records}
    jobs = [(records[i % len(records)].path, sampler(infos[records[i % len(records)].path], rng)) for i in range(clips)]

    def decode(job):
        path, indices = job
        data.probe_video(path)  # The pipeline probes each file too.
        return data.read_frames(path, indices).shape

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(decode, jobs[: threads]))
        start = time.perf_counter()
        list(pool.map(decode, jobs))
        return clips / (time.perf_counter() - start)


def main(argv):
    del argv
    from tfvideo import data

    root = FLAGS.workdir or tempfile.mkdtemp(prefix="tfvideo-bench-")
    threads = FLAGS.threads or os.cpu_count() or 1
    records = make_videos(root, data)
    data.prepare_tfrecords(records, os.path.join(root, "tfr"), "bench", num_shards=2,
                           config=data.PrepareConfig(resize_short=256), workers=1)
    sampler = data.SegmentSampler(FLAGS.segments, training=True)
    config = data.PreprocessConfig(crop_size=FLAGS.crop, resize_short=256)

    bound = decoding_bound(records, sampler, data, FLAGS.clips, threads)
    mp4 = time_dataset(data.video_dataset(records, sampler, config, seed=0, repeat=True), FLAGS.clips)
    tfr = time_dataset(
        data.video_dataset(os.path.join(root, "tfr", "bench-*.tfrecord"), sampler, config, seed=0, repeat=True), FLAGS.clips
    )
    print(f"TSN {FLAGS.segments}x{FLAGS.crop} training clips, {FLAGS.num_videos} videos of {FLAGS.num_frames} frames "
          f"{FLAGS.width}x{FLAGS.height} (GOP {FLAGS.gop}), {os.cpu_count()} cores, {FLAGS.clips} clips per path")
    print(f"  PyAV decoding bound : {bound:8.2f} clips/s")
    print(f"  mp4 files (tf.data) : {mp4:8.2f} clips/s   {mp4 / bound:6.2f}x bound   (target >= 0.70)")
    print(f"  TFRecords (tf.data) : {tfr:8.2f} clips/s   {tfr / mp4:6.2f}x mp4     (target >= 3.00)")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
