"""Runs many short Python programs that iterate a `video_dataset` part way, then exit; counts the hangs.

Usage: python pipeline_exit_driver.py VIDEO_LIST TFRECORD_PATTERN REPETITIONS TIMEOUT_S

Each repetition is one program end: a child forked from this process (TensorFlow imported,
no op run yet, so nothing is running to be broken by the fork) builds a dataset, takes two
batches and leaves the iterator alive in a global when the interpreter finalizes (sys.exit);
or first makes, half reads and deletes an iterator several times ("cycles"). Repetitions
cycle through the sources (video list, TFRecords), with and without repeat, both endings. A child still running
`TIMEOUT_S` seconds after it was started has hung: it is killed and counted. Prints one JSON
line: {"runs", "hangs", "failures", "seconds"}; hangs and failures list the cases.
"""

import gc
import json
import os
import signal
import sys
import time

from tensorflow.python.eager import context

from tfvideo import data

CASES = [(source, repeat, end) for end in ("alive", "cycles") for repeat in (True, False) for source in ("mp4", "tfrecord")]

iterator = None


def run_case(video_list, pattern, source, repeat, end):
    """The child: two batches of a half-read dataset (once, or four iterators in turn), then the interpreter exits."""
    global iterator
    # Raw frames (preprocess=False): building the preprocessing would cost most of a child's
    # time, and what hung runs before it (the Python decoding and sampling).
    sampler = data.SegmentSampler(num_segments=4, training=True)
    src = video_list if source == "mp4" else pattern
    ds = data.video_dataset(src, sampler, preprocess=False, batch_size=2, video_root=os.path.dirname(video_list), seed=0,
                            repeat=repeat)
    for _ in range(4 if end == "cycles" else 1):
        iterator = None  # Deletes the last one, half read.
        iterator = iter(ds)
        for _ in range(2):
            next(iterator)
    sys.exit(0)  # Finalizes the interpreter as the end of a script does.


def main(video_list, pattern, repetitions, timeout):
    # Forking after an op ran would copy a process whose TensorFlow threads are gone.
    if context.context()._context_handle is not None:  # noqa: SLF001 -- the one way to know.
        raise RuntimeError("TensorFlow ran an op before the fork; the children would not be sound.")
    gc.freeze()  # The children then leave the imported modules' objects to finalization alone: ~4x cheaper.
    hangs, failures = [], []
    start = time.monotonic()
    for i in range(repetitions):
        case = CASES[i % len(CASES)]
        pid = os.fork()
        if pid == 0:
            try:
                run_case(video_list, pattern, *case)
            except SystemExit:
                raise
            except BaseException:  # noqa: BLE001 -- any error is a failed case, reported by the status.
                os._exit(3)
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                if status != 0:
                    failures.append([i, *case, status])
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                hangs.append([i, *case])
                break
            time.sleep(0.02)
    print(json.dumps({"runs": repetitions, "hangs": hangs, "failures": failures,
                      "seconds": round(time.monotonic() - start, 1)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
