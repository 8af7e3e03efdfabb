"""The export programs: tfvideo-export, tfvideo-serve, tfvideo-predict.

The export implementation is the library's `tfvideo.export`; these are thin binaries over it.
"""

from trainers import _cli as _binaries  # Not `_cli`: that name is export/_cli.py.

_binaries.quiet_tensorflow_startup()  # Before TensorFlow loads, in a binary's process only (tfvideo-export/serve/predict).
