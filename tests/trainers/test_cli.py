"""The binaries' error contract (trainers/_cli.py): one `tfvideo-<name>: error:` line on stderr,
exit 2 (usage) or 1 (runtime), the traceback only under --verbose, no TensorFlow start-up lines.

The binaries run in subprocesses without TF_CPP_MIN_LOG_LEVEL, as a user starts them."""

import os
import subprocess
import sys

import pytest

from trainers import _cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(module, args, timeout=240, **extra_env):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_CONFIG")}
    env.update({"PYTHONPATH": REPO + os.pathsep + env.get("PYTHONPATH", ""), "CUDA_VISIBLE_DEVICES": "", **extra_env})
    return subprocess.run([sys.executable, "-m", module, *args], check=False, cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _assert_one_error_line(proc, prog, status):
    lines = proc.stderr.splitlines()
    assert proc.returncode == status, proc.stderr
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), proc.stderr
    return lines[0]


def _assert_no_startup_noise(stderr):
    for noise in ("cuda", "cuinit", "onednn", "cpu_feature_guard", "absl::initializelog"):
        assert noise not in stderr.lower(), stderr


@pytest.mark.slow
def test_train_usage_error_is_one_line_and_verbose_adds_the_traceback(tmp_path):
    args = ["--model=tsm_tiny", "--num_classes=2", f"--train_data={tmp_path}", f"--model_dir={tmp_path / 'run'}"]
    quiet = _run("trainers.train", args + ["--epochs=-1"])
    line = _assert_one_error_line(quiet, "tfvideo-train", 2)
    assert line == "tfvideo-train: error: --epochs=-1 must be >= 1."
    _assert_no_startup_noise(quiet.stderr)
    assert not (tmp_path / "run").exists()

    verbose = _run("trainers.train", args + ["--epochs=-1", "--verbose"])
    assert verbose.returncode == 2
    assert "Traceback (most recent call last)" in verbose.stderr and "in _validate" in verbose.stderr
    assert verbose.stderr.splitlines()[-1] == line

    # absl's own parse errors follow the same contract (no usage dump, exit 2).
    parse = _run("trainers.train", ["--epochs=many"])
    assert _assert_one_error_line(parse, "tfvideo-train", 2) == (
        "tfvideo-train: error: flag --epochs=many: invalid literal for int() with base 10: 'many'")
    unknown = _run("trainers.train", ["--nosuch_flag"])
    assert _assert_one_error_line(unknown, "tfvideo-train", 2) == (
        "tfvideo-train: error: Unknown command line flag 'nosuch_flag'")


@pytest.mark.slow
def test_start_up_lines_follow_a_user_set_log_level(tmp_path):
    """TF_CPP_MIN_LOG_LEVEL=2 (as scripts/_venv.sh once exported) still hides the start-up lines;
    0 asks for TensorFlow's info lines, and they pass through."""
    args = ["--model=tsm_tiny", "--num_classes=2", f"--train_data={tmp_path}", f"--model_dir={tmp_path / 'run'}",
            "--epochs=-1"]
    quiet = _run("trainers.train", args, TF_CPP_MIN_LOG_LEVEL="2")
    _assert_one_error_line(quiet, "tfvideo-train", 2)
    _assert_no_startup_noise(quiet.stderr)
    chatty = _run("trainers.train", args, TF_CPP_MIN_LOG_LEVEL="0")
    assert chatty.returncode == 2 and "absl::initializelog" in chatty.stderr.lower(), chatty.stderr


@pytest.mark.slow
def test_export_runtime_error_and_synthetic_usage_error(tmp_path):
    missing = tmp_path / "no_run"
    export = _run("export.export_saved_model", [f"--model_dir={missing}", f"--export_dir={tmp_path / 'exports'}"])
    line = _assert_one_error_line(export, "tfvideo-export", 1)
    assert str(missing) in line
    _assert_no_startup_noise(export.stderr)

    synthetic = _run("trainers.make_synthetic", [f"--output_dir={tmp_path / 'v'}", "--num_frames=0"])
    assert _assert_one_error_line(synthetic, "tfvideo-make-synthetic", 2) == (
        "tfvideo-make-synthetic: error: --num_frames=0 must be >= 1.")


def test_binary_name_recognizes_each_way_of_starting_a_binary():
    assert _cli.binary_name(["/venv/bin/tfvideo-serve"], ["python", "/venv/bin/tfvideo-serve"]) == "tfvideo-serve"
    assert _cli.binary_name(["-m"], ["python", "-m", "trainers.train", "--epochs=1"]) == "tfvideo-train"
    assert _cli.binary_name(["/repo/export/predict.py"], ["python", "/repo/export/predict.py"]) == "tfvideo-predict"
    assert _cli.binary_name(["/venv/bin/pytest"], ["python", "/venv/bin/pytest"]) is None
    assert _cli.binary_name(["-c"], ["python", "-c", "import trainers"]) is None
    # Every console script of setup.cfg is a known binary.
    with open(os.path.join(REPO, "setup.cfg")) as f:
        scripts = [line.split("=")[0].strip() for line in f if line.strip().startswith("tfvideo-")]
    assert sorted(scripts) == sorted(_cli.BINARIES.values())


def test_message_is_one_line_and_names_unexpected_types():
    assert _cli.message(ValueError("--x=0 must be >= 1.")) == "--x=0 must be >= 1."
    assert _cli.message(OSError(28, "No space left on device")) == "[Errno 28] No space left on device"
    assert _cli.message(RuntimeError("first\n  second")) == "RuntimeError: first"
    assert _cli.message(KeyError("label")) == "KeyError: 'label'"

    class FakeRpcError(Exception):  # grpc.RpcError's interface: the status name and its details.
        def code(self):
            return type("StatusCode", (), {"name": "UNAVAILABLE"})()

        def details(self):
            return "failed to connect to all addresses"

    assert _cli.message(FakeRpcError("<_InactiveRpcError of RPC that terminated with:\n...")) == (
        "UNAVAILABLE: failed to connect to all addresses")


def test_exit_status_usage_for_flags_and_input_files_runtime_otherwise():
    from absl import app

    from tfvideo import data

    assert _cli._exit_status(_cli.UsageError("--x=0")) == 2
    assert _cli._exit_status(app.UsageError("--model is required")) == 2
    assert _cli._exit_status(data.AnnotationError("list.txt:3: unknown label 'cat'")) == 2
    assert _cli._exit_status(OSError(28, "No space left on device")) == 1
    assert _cli._exit_status(ValueError("bad video")) == 1


def test_start_up_filter_keeps_other_lines(capfd):
    with _cli._filtered_stderr(_cli._STARTUP_NOISE):
        os.write(2, b"I0000 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.\n")
        os.write(2, b"E0000 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n")
        os.write(2, b"something the user must see\n")
    assert capfd.readouterr().err == "something the user must see\n"


def test_evaluate_extract_stream_reject_non_positive_numbers(tmp_path, capsys):
    from absl import flags
    from absl.testing import flagsaver

    from trainers import evaluate, extract_features, stream

    if not flags.FLAGS.is_parsed():
        flags.FLAGS(["tfvideo"])
    where = {"model_dir": str(tmp_path), "data": str(tmp_path / "list.txt"), "output_dir": str(tmp_path / "out")}
    with flagsaver.flagsaver(model_dir=where["model_dir"], batch_size=0):
        with pytest.raises(_cli.UsageError, match=r"^--batch_size=0 must be >= 1\.$"):
            evaluate.evaluate_recognition()
    with flagsaver.flagsaver(model_dir=where["model_dir"], num_clips=0):
        with pytest.raises(_cli.UsageError, match=r"^--num_clips=0 must be >= 1\.$"):
            evaluate.evaluate_recognition()
    with flagsaver.flagsaver(**where, chunk_size=-6):
        with pytest.raises(_cli.UsageError, match=r"^--chunk_size=-6 must be >= 1\.$"):
            extract_features.extract_all()
    with flagsaver.flagsaver(model_dir=where["model_dir"], chunk_seconds=0.0):
        assert stream.main(["tfvideo-stream"]) == 2
    assert capsys.readouterr().err == "tfvideo-stream: error: --chunk_seconds=0 must be > 0.\n"
    assert os.listdir(tmp_path) == []


def test_guard_checks_the_ranges_a_binary_declares(capsys):
    from absl import flags
    from absl.testing import flagsaver

    for name, definer, default in (("cli_test_top_k", flags.DEFINE_integer, 5),
                                   ("cli_test_timeout", flags.DEFINE_float, 30.0)):
        if name not in flags.FLAGS:
            definer(name, default, "A flag of this test.")
    if not flags.FLAGS.is_parsed():
        flags.FLAGS(["tfvideo"])
    ran = []
    main = _cli.guard(lambda argv: ran.append(argv) or 0, "tfvideo-predict",
                      {"cli_test_top_k": ">=1", "cli_test_timeout": ">0"})
    with flagsaver.flagsaver(cli_test_top_k=0):
        assert main(["tfvideo-predict"]) == 2
    with flagsaver.flagsaver(cli_test_timeout=-1.0):
        assert main(["tfvideo-predict"]) == 2
    assert capsys.readouterr().err == ("tfvideo-predict: error: --cli_test_top_k=0 must be >= 1.\n"
                                       "tfvideo-predict: error: --cli_test_timeout=-1 must be > 0.\n")
    assert ran == []
    with flagsaver.flagsaver(cli_test_top_k=3):
        assert main(["tfvideo-predict"]) == 0 and ran == [["tfvideo-predict"]]


@pytest.mark.parametrize("module, prog, own, shared", [
    ("trainers.train", "tfvideo-train", ["--epochs", "--learning_rate", "--recipe"], ["--model_dir", "--verbose"]),
    ("export.export_saved_model", "tfvideo-export", ["--export_dir", "--input_type"], ["--verbose"]),
])
def test_help_prints_the_binary_flags_grouped(module, prog, own, shared):
    proc = _run(module, ["--help"])
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith(f"usage: {prog} [flags]") and "Try --helpfull" not in out
    own_part, _, shared_part = out.partition("shared flags (")
    assert f"\n{prog} flags:\n" in own_part
    assert all(f"\n  {flag}: " in own_part for flag in own), out
    assert all(f"\n  {flag}: " in shared_part for flag in shared), out
    assert "--xla_" not in out and "--logtostderr" not in out  # TensorFlow's and absl's own: --helpfull.
    assert out.rstrip().endswith("--helpfull")
    _assert_no_startup_noise(proc.stderr)
