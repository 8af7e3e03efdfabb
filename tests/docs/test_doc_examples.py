"""Every code block of README.md and docs/ is checked, so a documented example cannot rot.

Python blocks run in a fresh process, in a folder holding tiny data (moving-shapes videos,
their lists and TFRecords). A block meant for real data says how to run it small with an
HTML comment on the line before it, holding JSON:

    <!-- doctest {"replace": [["tsm_r50", "tsm_tiny"], ["/data/tfrecords/train-*", "{shards}"]]} -->

`replace` pairs are applied in order (each must occur: a stale directive fails), with
`{shards}` (a TFRecord pattern), `{train_list}`, `{val_list}`, `{label_map}` filled in;
`setup` is code run before the block; `{"skip": "why"}` marks a block not meant to run (the
test is skipped with that reason). Bash blocks: every `tfvideo-*` command must be a console
script of setup.cfg and every `--flag` it passes a flag that binary defines (`--noflag` too).
"""

import configparser
import glob
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = ["README.md", *sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "**", "*.md"),
                                                                         recursive=True))]
_BLOCK = re.compile(r"(?:<!--\s*doctest\s+(?P<directive>\{.*?\})\s*-->[ \t]*\n)?"
                    r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.S | re.M)


def doc_blocks(language):
    """[(doc:line, body, directive dict)] of the fenced blocks in `language` ("python" or "bash")."""
    found = []
    for doc in DOCS:
        with open(os.path.join(REPO, doc)) as f:
            text = f.read()
        for match in _BLOCK.finditer(text):
            if match.group("lang") == language:
                line = text.count("\n", 0, match.start("indent")) + 1
                directive = json.loads(match.group("directive")) if match.group("directive") else {}
                found.append((f"{doc}:{line}", textwrap.dedent(match.group("body")), directive))
    return found


def console_scripts():
    """{tfvideo-name: module} from setup.cfg's [options.entry_points]."""
    config = configparser.ConfigParser()
    config.read(os.path.join(REPO, "setup.cfg"))
    scripts = {}
    for line in config["options.entry_points"]["console_scripts"].strip().splitlines():
        name, _, target = line.partition("=")
        scripts[name.strip()] = target.strip().partition(":")[0]
    return scripts


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from tfvideo import data

    root = tmp_path_factory.mktemp("doc_data")
    lists = data.make_moving_shapes_dataset(str(root), videos_per_class=(3, 1), num_frames=16, size=32)
    records = data.read_annotations(lists["train"], str(root), lists["label_map"])
    data.prepare_tfrecords(records, str(root / "shards"), "train", num_shards=2,
                           config=data.PrepareConfig(resize_short=0), workers=1)
    return {"root": str(root), "shards": str(root / "shards" / "train-*"), "train_list": lists["train"],
            "val_list": lists["val"], "label_map": lists["label_map"]}


PYTHON_BLOCKS = doc_blocks("python")


def test_the_docs_hold_python_and_bash_examples():
    assert len(PYTHON_BLOCKS) >= 4 and len(doc_blocks("bash")) >= 8  # The parser still finds them.


@pytest.mark.parametrize("where, body, directive", PYTHON_BLOCKS, ids=[b[0] for b in PYTHON_BLOCKS])
def test_python_example_runs(where, body, directive, tiny_data):
    if "skip" in directive:
        pytest.skip(f"{where}: {directive['skip']}")
    for old, new in directive.get("replace", []):
        assert old in body, f"{where}: the doctest directive replaces {old!r}, which the block no longer holds"
        for key, value in tiny_data.items():
            new = new.replace("{" + key + "}", value)
        body = body.replace(old, new)
    script = os.path.join(tiny_data["root"], f"example_{abs(hash(where))}.py")
    with open(script, "w") as f:
        f.write(directive.get("setup", "") + "\n" + body)
    env = dict(os.environ, PYTHONPATH=REPO, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run([sys.executable, script], cwd=tiny_data["root"], env=env, capture_output=True, text=True,
                         timeout=600, check=False)
    assert run.returncode == 0, f"{where} failed:\n{body}\n{run.stderr[-4000:]}"


def _commands(body):
    """[(binary, [flag names])] of the tfvideo-* commands in a bash block (continuation lines joined)."""
    commands = []
    for line in body.replace("\\\n", " ").splitlines():
        line = line.split("  #")[0].strip()
        words = line.split()
        if words and words[0].startswith("tfvideo-"):
            flags = [re.match(r"--([\w-]+)", w).group(1) for w in words[1:] if re.match(r"--[\w-]+", w)]
            commands.append((words[0], flags))
    return commands


_LIST_FLAGS = """
import json, os, sys
import tensorflow  # noqa: F401 -- imported once, before the forks.
from absl import flags
out = {}
for module in sys.argv[1:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        __import__(module)
        os.write(write, json.dumps(sorted(flags.FLAGS)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        out[module] = json.loads(f.read() or "[]")
    os.waitpid(pid, 0)
print(json.dumps(out))
"""


def test_bash_examples_name_real_binaries_and_flags():
    scripts = console_scripts()
    commands = [(where, *c) for where, body, _ in doc_blocks("bash") for c in _commands(body)]
    assert commands
    unknown = sorted({f"{where}: {binary}" for where, binary, _ in commands if binary not in scripts})
    assert not unknown, f"commands that are no console script of setup.cfg: {unknown}"
    modules = sorted({scripts[binary] for _, binary, _ in commands})
    env = dict(os.environ, PYTHONPATH=REPO, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run([sys.executable, "-c", _LIST_FLAGS, *modules], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    defined = {m: set(names) for m, names in json.loads(run.stdout.strip().splitlines()[-1]).items()}
    assert all(defined.values()), defined
    bad = []
    for where, binary, flags in commands:
        for flag in flags:
            names = defined[scripts[binary]]
            if flag not in names and not (flag.startswith("no") and flag[2:] in names):
                bad.append(f"{where}: {binary} --{flag}")
    assert not bad, f"flags the binaries do not define: {bad}"


def test_bash_commands_are_read_with_their_flags():
    block = "tfvideo-train --model=tsm_tiny \\\n    --noflip --epochs=1  # not --this\npip install --user x\n"
    assert _commands(block) == [("tfvideo-train", ["model", "noflip", "epochs"])]
