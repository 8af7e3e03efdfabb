"""The golden API listing: regenerate with `python -m tfvideo.api.golden --update`."""

import re
import subprocess
import sys
from collections import Counter

from tfvideo.api import _export, golden


def test_public_api_matches_golden_file():
    current = golden.api_listing()
    recorded = golden.GOLDEN_PATH.read_text()
    assert current == recorded, "Public API changed: run `python -m tfvideo.api.golden --update` and commit golden.txt"


def test_check_fails_when_a_symbol_is_added_without_regenerating(capsys):
    assert golden.main(["--check"]) == 0

    @_export.tf_export("tfvideo.models.AddedWithoutGolden")
    def added_without_golden(x, y=2):
        return x

    try:
        assert golden.main(["--check"]) == 1
        out = capsys.readouterr().out
        assert "+def tfvideo.models.AddedWithoutGolden(x, y=2)" in out
    finally:
        _export.unregister("tfvideo.models.AddedWithoutGolden")
    assert golden.main(["--check"]) == 0


def test_listing_has_signatures():
    listing = golden.api_listing()
    assert re.search(r"^class tfvideo\.models\.TSM\(num_classes, num_segments=8", listing, re.M)
    assert re.search(r"^def tfvideo\.data\.read_frames\(path, indices, stats=None, num_threads=None, short_side=None\)$", listing, re.M)


def _stderr_lines(code):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": ""})
    # Drop timestamps and thread ids from TensorFlow's log prefix.
    return Counter(re.sub(r"^([IWEF])\d{4} [\d:.]+\s+\d+ ", r"\1 ", line) for line in result.stderr.splitlines())


def test_import_prints_nothing_beyond_tensorflow():
    baseline = _stderr_lines("import tensorflow, keras")
    ours = _stderr_lines("import tfvideo")
    assert ours - baseline == Counter(), f"importing tfvideo printed more than TensorFlow: {ours - baseline}"
    gpu_probes = sum(n for line, n in ours.items() if "cuda drivers" in line)
    assert gpu_probes <= sum(n for line, n in baseline.items() if "cuda drivers" in line)
