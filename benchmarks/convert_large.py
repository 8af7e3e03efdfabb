"""Conversion and loading of large checkpoints: time and peak memory (issue 22, item 2).

  python benchmarks/convert_large.py                     # TRN at the authors' THUMOS size + ResNet-50s
  python benchmarks/convert_large.py --resnet=false     # TRN only

Writes, in a temporary folder, a TRN.pytorch checkpoint in the authors' layout
(`{"epoch", "model_state_dict"}` of `GeneralizedTRN`: feature 3072 = RGB 2048 + flow 1024,
fusion 3072, hidden 4096, 8 decoder steps, 22 classes: 358M parameters, 1.43 GB) at random
weights, then runs, each in a fresh process (peak RSS from `wait4`):

- `tfvideo-convert --source=trn_pytorch` (the binary, as a user runs it), target <= 60 s;
- `keras.saving.load_model` of its output plus one forward pass over one chunk ([1, 1, 3072]:
  the encoder step and the 8 decoder steps, each reading the LSTM weights), target <= 30 s;
- the three ResNet-50 formats (torchvision -> tsn_r50, mmaction2 -> tsm_r50, tsm -> tsm_r50)
  through the binary, target < 10 s each;

and prints each figure with its target. Peak memory is reported as the process's peak RSS
and as that above the peak RSS of a process that only imports the binary (TensorFlow's own
footprint); the target is <= 3x the weights' size. The ResNet-50 rows also give the conversion
itself: the process less a baseline process that starts, imports the binary's modules and
exits as the binary does; `python -c "import tensorflow"` alone is timed too. Needs torch (to
write the checkpoints). The numbers depend on the machine's load: the load average is printed
with them, and each process's CPU seconds (user + system) beside its wall clock.
"""

import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests", "online")]

FLAGS = flags.FLAGS
flags.DEFINE_boolean("resnet", True, "Also time the three ResNet-50 formats.")
flags.DEFINE_string("work_dir", None, "Folder for the checkpoints and outputs (default: a temporary one).")

CPU = {}
FEATURE, FUSION, HIDDEN, CLASSES, STEPS = 3072, 3072, 4096, 22, 8  # The `trn` preset's defaults.

_LOAD = """
import json, sys, time
t0 = time.time()
import keras, numpy as np
import tfvideo  # noqa: F401 -- registers the detector classes.
t1 = time.time()
model = keras.saving.load_model(sys.argv[1], compile=False)
t2 = time.time()
out = model(np.random.default_rng(0).normal(size=(1, 1, {feature})).astype("float32"))
float(np.asarray(out["scores"]).sum())
t3 = time.time()
print(json.dumps({{"import": t1 - t0, "load": t2 - t1, "forward": t3 - t2}}))
""".format(feature=FEATURE)


def _run(args, out_dir, name):
    """Runs `args` (a Python command) -> (seconds, peak RSS in bytes, stdout). Exits on failure.
    Appends the child's CPU seconds (user + system) to CPU[name]."""
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    stdout, stderr = (open(os.path.join(out_dir, f"{name}.{s}"), "w+") for s in ("out", "err"))
    start = time.time()
    process = subprocess.Popen([sys.executable, *args], stdout=stdout, stderr=stderr, env=env, cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.time() - start
    CPU[name] = usage.ru_utime + usage.ru_stime
    stdout.seek(0), stderr.seek(0)
    text, errors = stdout.read(), stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{name} failed:\n{errors[-3000:]}")
    return seconds, usage.ru_maxrss * 1024, text


def _trn_checkpoint(path, hidden):
    """The authors' layout at PyTorch's default (uniform) init scale; returns the parameter count."""
    import reference_online
    import torch

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in reference_online.TRN(FEATURE, CLASSES, FUSION, hidden, STEPS)
                  .state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in shapes.items():
        bound = 1 / math.sqrt(shape[-1] if len(shape) > 1 else hidden)
        state[key] = torch.empty(shape).uniform_(-bound, bound, generator=generator)
    torch.save({"epoch": 21, "model_state_dict": state}, path)
    return sum(v.numel() for v in state.values())


def _resnet_checkpoints(folder):
    """torchvision, MMAction2 and TSM-authors ResNet-50 checkpoints -> [(source, model, path)]."""
    import torch

    from tests.models import torch_references as refs

    torch.manual_seed(0)
    net = refs.ResNet(50, 400, 64).eval()
    state = net.state_dict()
    out = [("torchvision", "tsn_r50", os.path.join(folder, "resnet50_torchvision.pth"))]
    torch.save(state, out[-1][2])
    rules = [(r"^conv1\.weight$", "conv1.conv.weight"), (r"^bn1\.", "conv1.bn."),
             (r"^(layer\d\.\d+)\.conv(\d)\.weight$", r"\1.conv\2.conv.weight"),
             (r"^(layer\d\.\d+)\.bn(\d)\.", r"\1.conv\2.bn."),
             (r"\.downsample\.0\.", ".downsample.conv."), (r"\.downsample\.1\.", ".downsample.bn.")]
    mm = {}
    for key, value in state.items():
        if key.startswith("fc."):
            mm["cls_head.fc_cls." + key[3:]] = value
            continue
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        mm["backbone." + key] = value
    out.append(("mmaction2", "tsm_r50", os.path.join(folder, "tsm_r50_mmaction2.pth")))
    torch.save({"meta": {"epoch": 50, "mmengine_version": "0.10"}, "state_dict": mm}, out[-1][2])
    authors = refs.TSMAuthors(400, 8, 50, 64).eval()
    out.append(("tsm", "tsm_r50", os.path.join(folder, "TSM_kinetics_RGB_resnet50.pth")))
    torch.save({"epoch": 50, "arch": "resnet50", "best_prec1": 70.0,
                "state_dict": {f"module.{k}": v for k, v in authors.state_dict().items()}}, out[-1][2])
    return out


def _gb(n):
    return f"{n / 2**30:.2f} GiB"


def main(argv):
    del argv
    folder = FLAGS.work_dir or tempfile.mkdtemp(prefix="convert_large_")
    os.makedirs(folder, exist_ok=True)
    rows = []
    load_avg = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, load average {load_avg:.1f}")
    tf_seconds, _, _ = _run(["-c", "import tensorflow"], folder, "tensorflow")
    print(f"`python -c 'import tensorflow'` alone: {tf_seconds:.1f} s ({CPU['tensorflow']:.1f} s CPU)")
    # What every run of the binary pays before and after its work: Python, the imports, and the
    # exit with the garbage collector frozen (as trainers/convert.py's `run` does).
    base_seconds, base_rss, _ = _run(["-c", "import trainers.convert, keras, tfvideo, gc; gc.freeze()"], folder,
                                     "baseline")
    print(f"baseline: a process importing tfvideo-convert and exiting as it does takes {base_seconds:.1f} s "
          f"({CPU['baseline']:.1f} s CPU) and peaks at {_gb(base_rss)} RSS")

    ckpt = os.path.join(folder, "trn_thumos.pth")
    start = time.time()
    params = _trn_checkpoint(ckpt, HIDDEN)
    size = os.path.getsize(ckpt)
    print(f"TRN hidden {HIDDEN}: {params / 1e6:.0f}M parameters, {_gb(size)} checkpoint "
          f"(written in {time.time() - start:.0f} s)")
    output = os.path.join(folder, "trn_thumos.keras")
    seconds, rss, text = _run(["-m", "trainers.convert", "--source=trn_pytorch", f"--checkpoint={ckpt}",
                               "--model=trn", f"--feature_dim={FEATURE}", f"--num_classes={CLASSES}",
                               f"--output={output}"], folder, "convert")
    rows.append(("TRN tfvideo-convert", seconds, 60, rss, "convert"))
    os.remove(ckpt)
    seconds, rss, text = _run(["-c", _LOAD, output], folder, "load")
    parts = json.loads(text.strip().splitlines()[-1])
    rows.append(("TRN load_model + forward [1, 1, 3072]", parts["load"] + parts["forward"], 30, rss, "load"))
    print(f"  load_model {parts['load']:.1f} s, forward {parts['forward']:.1f} s "
          f"(+ {parts['import']:.1f} s importing TensorFlow/tfvideo, not counted)")
    os.remove(output)

    if FLAGS.resnet:
        for source, model, path in _resnet_checkpoints(folder):
            out = path.replace(".pth", ".keras")
            seconds, rss, _ = _run(["-m", "trainers.convert", f"--source={source}", f"--checkpoint={path}",
                                    f"--model={model}", "--num_classes=400", f"--output={out}"], folder, source)
            rows.append((f"ResNet-50 {source} -> {model}", seconds, 10, None, source))
            os.remove(path), os.remove(out)

    print(f"\n{'case':40s} {'seconds':>7s} {'CPU s':>6s} {'target':>6s}        {'peak RSS':>8s} {'above base':>10s}  "
          "memory / net of the baseline")
    for name, seconds, target, rss, key in rows:
        if rss is not None:
            ratio = (rss - base_rss) / size
            memory = f"{_gb(rss):>9s} {_gb(rss - base_rss):>10s}  {ratio:.1f}x weights (target <= 3x)"
        else:  # The conversion itself: the process less the baseline's start-up and exit.
            memory = (f"{'':>20s}  conversion {seconds - base_seconds:.1f} s ({CPU[key] - CPU['baseline']:.1f} s CPU) "
                      "+ start-up and exit")
        ok = "ok" if seconds <= target else "MISSED"
        print(f"{name:40s} {seconds:7.1f} {CPU[key]:6.1f} {target:5.0f}s {ok:6s} {memory}")
    print(f"load average now {os.getloadavg()[0]:.1f} (was {load_avg:.1f}). Seconds: wall clock of the whole "
          "process (TensorFlow start-up included) except the load row (load_model + forward only); CPU s: the "
          "process's user + system time, the baseline's included.")


if __name__ == "__main__":
    app.run(main)
