"""tfvideo-train's progress without a terminal: plain periodic lines, no bar redrawn with escape codes."""

import re

import pytest
import trainers_testlib as lib


@pytest.mark.slow
def test_progress_to_a_pipe_is_plain_lines(moving_shapes, tmp_path):
    args = [a for a in lib.TINY if not a.startswith("--verbose")]
    proc = lib.run("train", args + [f"--train_data={moving_shapes['train']}", f"--label_map={moving_shapes['label_map']}",
                                    f"--model_dir={tmp_path / 'run'}", "--epochs=1", "--steps_per_epoch=4",
                                    "--log_every_steps=2", "--verbose=1"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not re.search(r"[\x1b\r\b]", proc.stdout), repr(proc.stdout[-2000:])  # stdout is a pipe here.
    steps = re.findall(r"^step (\d+)/4 - loss: [\d.]+ - accuracy: [\d.]+ - [\d.]+ clips/s$", proc.stdout, re.M)
    assert steps == ["2", "4"], proc.stdout
