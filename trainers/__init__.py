"""tfvideo's absl binaries (train, evaluate, prepare, ...); logic lives in the library."""

from trainers import _cli

_cli.quiet_tensorflow_startup()  # Before TensorFlow loads, in a binary's process only.
