"""Flag definitions shared by several binaries (defined once per process)."""

import math

from absl import flags

from trainers import _cli


def define(definer, name, *args, **kwargs):
    """`definer(name, *args, **kwargs)` unless another binary in this process defined `name`.

    The one "define unless already defined" of the binaries: flags shared by several of them
    (--model_dir, --eval_data, --batch_size, --verbose, the online-detection flags) go
    through it, so importing two binaries in one process (tests, trainers/evaluate.py and
    trainers/train.py both calling `_online.define_flags`) does not raise DuplicateFlagError.
    """
    if name not in flags.FLAGS:
        definer(name, *args, **kwargs)


def _within(value, rule):
    """`rule`: ">=1", ">0", ">=0", "[0,1)", "[0,1]", "(0,1]" ..."""
    if rule.startswith(">="):
        return value >= float(rule[2:])
    if rule.startswith(">"):
        return value > float(rule[1:])
    low, high = (float(v) for v in rule[1:-1].split(","))
    above = value >= low if rule[0] == "[" else value > low
    below = value <= high if rule[-1] == "]" else value < high
    return above and below


def _describe(rule):
    if rule.startswith(">"):
        return rule[:2].strip("0123456789.") + " " + rule.lstrip("<>=")
    return f"in {rule[0]}{rule[1:-1].replace(',', ', ')}{rule[-1]}"


def check_ranges(values, rules):
    """Raises `_cli.UsageError` naming the first flag whose value is outside its range.

    values: absl FLAGS or any object with the flags as attributes (None = not given, skipped).
    rules: {flag name: ">=1" | ">0" | ">=0" | "[0,1)" | ...}; list flags are checked per item;
    NaN and infinity are outside every range.
    """
    for name, rule in rules.items():
        value = getattr(values, name, None)
        if value is None:
            continue
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            try:
                number = float(item)
            except (TypeError, ValueError):
                raise _cli.UsageError(f"--{name}={_show(value)}: {item!r} is not a number.") from None
            if not math.isfinite(number):
                raise _cli.UsageError(f"--{name}={_show(value)} must be a finite number {_describe(rule)}.")
            if not _within(number, rule):
                raise _cli.UsageError(f"--{name}={_show(value)} must be {_describe(rule)}.")


def _show(value):
    """The value as the user wrote it (a float without a trailing .0, a list comma-separated)."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else value
