"""Peak memory of one tfvideo-prepare worker process on a 4K H.264 clip, against the target <= 1 GB.

  python benchmarks/prepare_memory.py                   # 60 s of 3840x2160 at 30 fps (+ a 2 s clip)
  python benchmarks/prepare_memory.py --seconds=10      # shorter, where encoding 4K is slow
  python benchmarks/prepare_memory.py --width=1920 --height=1080

The clips are written here with PyAV (libx264 ultrafast, a moving textured pattern, so
every frame decodes to new pixels), then each is prepared (`prepare_tfrecords`,
resize_short=256, workers=1) from a fresh Python process. That process only coordinates
(it holds TensorFlow, ~900 MB, once per run, not per worker); the video is converted by
the worker process it starts, which does not import TensorFlow. Reported for the worker:
  baseline  RSS of a worker after its imports (PyAV, OpenCV, numpy), before any video;
  peak      the worker's VmHWM, its peak resident memory (prepare_tfrecords' worker_peak_rss_mb);
  anon      its peak anonymous (private) memory, sampled every 2 ms.
The output record itself grows with the clip (its JPEGs, kept until the record is written:
~15 KB a frame at 256 px).
Per-frame growth is (peak of the long clip - peak of the short clip) / (frames between them):
~0 when frames stream through decode, resize and JPEG one at a time (holding a decoded 4K
frame costs ~36 MB: 25 MB RGB + 12 MB YUV), so a longer clip's peak follows from a shorter one's.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_MB = 1024


def _status(*keys):
    with open("/proc/self/status") as f:
        fields = {line.split(":")[0]: int(line.split()[1]) for line in f if line.split(":")[0] in keys}
    return [fields.get(k, 0) / 1024 for k in keys]


def _workers():
    """Pids of this process's worker processes (children of any of its threads, once they run the worker:
    between fork and exec a child still shows this process's memory)."""
    pids = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                children = f.read().split()
        except OSError:  # The thread ended.
            continue
        for pid in children:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"_worker_main" in f.read():
                        pids.append(pid)
            except OSError:
                pass
    return pids


def _anon_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) / 1024 for line in f if line.startswith("RssAnon:")), 0.0)
    except OSError:  # It ended.
        return 0.0


def _child(video, out, resize_short):
    """Prepares `video` into `out` (one worker process); prints one JSON line of memory figures (MB)."""
    sys.path.insert(0, ROOT)
    from tfvideo import data

    (coordinator,) = _status("VmRSS")
    peak_anon = [0.0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak_anon[0] = max([peak_anon[0]] + [_anon_mb(pid) for pid in _workers()])
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    result = data.prepare_tfrecords([data.VideoRecord(video, 0, "clip")], out, "clip", 1,
                                    data.PrepareConfig(resize_short=resize_short), workers=1)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if result["failures"]:
        raise SystemExit(f"prepare failed: {result['failures']}")
    peak = result["worker_peak_rss_mb"]  # The worker's own VmHWM (getrusage's children figure counts the parent's pages).
    print(json.dumps({"coordinator": coordinator, "peak": peak, "anon": peak_anon[0], "seconds": seconds,
                      "shard_mb": os.path.getsize(result["shards"][0]) / 2**20}))


def worker_baseline():
    """RSS (MB) of a worker process after its imports: what `_prepare._worker_main` runs in."""
    code = ("from tfvideo.data import _prepare; import sys; "
            "print(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1], "
            "'tensorflow' in sys.modules)")
    env = {**os.environ, "TFVIDEO_LIGHT_IMPORT": "1", "PYTHONPATH": ROOT}  # As _prepare._run_in_worker starts them.
    rss, tensorflow = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                     check=True).stdout.split()
    if tensorflow != "False":
        raise SystemExit("a prepare worker imported TensorFlow")
    return int(rss) / 1024


def write_clip(path, seconds, fps, height, width):
    """A libx264 clip of smooth random blobs sliding 8 px per frame; returns its frame count."""
    import av
    import cv2

    count = int(round(seconds * fps))
    rng = np.random.default_rng(0)
    long_width = width + 8 * count
    tile = rng.integers(0, 256, (height // 64 + 1, long_width // 64 + 1, 3), np.uint8)
    texture = cv2.resize(tile, (tile.shape[1] * 64, tile.shape[0] * 64), interpolation=cv2.INTER_CUBIC)[:height]
    with av.open(path, mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(2 * fps)}
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(texture[:, 8 * i:8 * i + width]), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return count


def measure(video, resize_short):
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
        answer = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", video, out,
                                 f"--resize_short={resize_short}"], capture_output=True, text=True, env=env, check=False)
    if answer.returncode:
        raise SystemExit(f"child failed:\n{answer.stderr[-3000:]}")
    return json.loads(answer.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the long clip")
    parser.add_argument("--short_seconds", type=float, default=2.0, help="length of the short clip")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--width", type=int, default=3840)
    parser.add_argument("--height", type=int, default=2160)
    parser.add_argument("--resize_short", type=int, default=256)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(*args.child, args.resize_short)
    if not 0 < args.short_seconds < args.seconds:
        parser.error("need 0 < --short_seconds < --seconds")
    print(f"tfvideo-prepare worker memory: {args.width}x{args.height} H.264 at {args.fps} fps, "
          f"resize_short={args.resize_short}, {os.cpu_count()} CPUs")
    sys.path.insert(0, ROOT)
    baseline = worker_baseline()
    print(f"  a worker holds {baseline:.0f} MB after its imports (no TensorFlow), before any video")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for seconds in (args.short_seconds, args.seconds):
            path = os.path.join(folder, f"clip_{seconds:g}s.mp4")
            start = time.perf_counter()
            frames = write_clip(path, seconds, args.fps, args.height, args.width)
            written = time.perf_counter() - start
            figures = measure(path, args.resize_short)
            rows.append((seconds, frames, figures))
            print(f"  {seconds:5g} s {frames:5d} frames: worker peak {figures['peak']:6.0f} MB  "
                  f"anon peak {figures['anon']:6.0f} MB  "
                  f"prepare {figures['seconds']:5.1f} s ({frames / figures['seconds']:.1f} frames/s, "
                  f"{figures['shard_mb'] * 1024 / frames:.0f} KB of JPEG per frame; "
                  f"clip written in {written:.0f} s, {os.path.getsize(path) / 1e6:.0f} MB)")
    (_, short_frames, short), (_, long_frames, long) = rows
    growth = (long["peak"] - short["peak"]) / (long_frames - short_frames)
    anon_growth = (long["anon"] - short["anon"]) / (long_frames - short_frames)
    print(f"  per-frame growth of the peak: {growth * 1024:+.1f} KB/frame (anon {anon_growth * 1024:+.1f} KB/frame); "
          f"holding decoded frames would be ~{args.width * args.height * 4.5 / 2**20:.1f} MB/frame")
    minute = 60 * args.fps
    if long_frames < minute:
        print(f"  extrapolated to 60 s ({minute} frames): peak {long['peak'] + max(growth, 0) * (minute - long_frames):.0f} MB, "
              f"anon peak {long['anon'] + max(anon_growth, 0) * (minute - long_frames):.0f} MB")
    for what, value in (("worker peak RSS", long["peak"]), ("worker private (anon) peak", long["anon"])):
        verdict = "meets" if value <= TARGET_MB else "MISSES"
        print(f"  {what} on the {args.seconds:g} s clip: {value:.0f} MB: {verdict} the target <= {TARGET_MB} MB per worker")
    print(f"  (the coordinating process, once per run: {long['coordinator']:.0f} MB after importing TensorFlow)")


if __name__ == "__main__":
    main()
