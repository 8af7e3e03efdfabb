"""Online action detection in the train/evaluate binaries (`--task=online_detection`).

Placeholder interface filled in by the online-detection work: `define_flags()` is called by
trainers/train.py and trainers/evaluate.py at import time; `train_main(flags)` and
`evaluate_main(flags)` run the task.
"""


def define_flags():
    """Defines the online-detection flags (features/targets directories, history, ...)."""


def train_main(flags):
    raise NotImplementedError("--task=online_detection is not available yet")


def evaluate_main(flags):
    raise NotImplementedError("--task=online_detection is not available yet")
