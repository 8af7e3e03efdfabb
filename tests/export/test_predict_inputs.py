"""tfvideo-predict's folder search: symlinked sub-folders are followed, loops are searched once."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "PYTHONPATH": ROOT, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}


def _tree(tmp_path):
    """videos/a/v0.mp4, videos/linked -> ../elsewhere (elsewhere/v1.mp4, elsewhere/deep/v2.mkv),
    videos/a/up -> .. (a loop), videos/again -> ../elsewhere (a second link to one folder)."""
    videos, elsewhere = tmp_path / "videos", tmp_path / "elsewhere"
    (videos / "a").mkdir(parents=True)
    (elsewhere / "deep").mkdir(parents=True)
    for path in (videos / "a" / "v0.mp4", elsewhere / "v1.mp4", elsewhere / "deep" / "v2.mkv"):
        path.write_bytes(b"not decoded here")
    (videos / "linked").symlink_to(elsewhere, target_is_directory=True)
    (videos / "again").symlink_to(elsewhere, target_is_directory=True)
    (videos / "a" / "up").symlink_to("..", target_is_directory=True)
    return str(videos)


def test_symlinked_folders_are_searched_and_loops_once(tmp_path):
    videos = _tree(tmp_path)
    code = f"import json; from export.predict import expand_inputs; print(json.dumps(expand_inputs([{videos!r}])))"
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=ROOT,
                            timeout=120, check=False)
    assert answer.returncode == 0, answer.stderr[-3000:]
    paths, problems, notes = json.loads(answer.stdout)
    # Sorted walk: a/, again/ (the first way into elsewhere/), linked/ (the same folder: once).
    assert paths == [os.path.join(videos, "a", "v0.mp4"), os.path.join(videos, "again", "v1.mp4"),
                     os.path.join(videos, "again", "deep", "v2.mkv")]
    assert problems == []
    assert sorted(notes) == sorted([
        [os.path.join(videos, "a", "up"), f"the same folder as {videos} (via a symlink); searched once"],
        [os.path.join(videos, "linked"), f"the same folder as {os.path.join(videos, 'again')} (via a symlink); "
                                         "searched once"],
    ])


def test_the_binary_says_where_a_loop_was_cut(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "up").symlink_to("..", target_is_directory=True)
    folder = str(tmp_path / "empty")
    answer = subprocess.run([sys.executable, "-m", "export.predict", f"--saved_model={tmp_path / 'none'}", folder],
                            capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300, check=False)
    assert answer.returncode == 1 and "Traceback" not in answer.stderr, answer.stderr[-3000:]
    assert [line for line in answer.stderr.splitlines() if line.startswith("tfvideo-predict")] == [
        f"tfvideo-predict: warning: {os.path.join(folder, 'sub', 'up')}: the same folder as {folder} (via a symlink); "
        "searched once",
        f"tfvideo-predict: error: {folder}: folder holds no video files (.mp4, .m4v, .mov, .avi, .mkv, .webm, .mpg, "
        ".mpeg, .wmv, .flv, .3gp)",
        "tfvideo-predict: error: no video files to predict",
    ]
