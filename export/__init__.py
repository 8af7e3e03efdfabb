"""SavedModel export for TF Serving (published as `tfvideo.export`)."""

from trainers import _cli as _binaries  # Not `_cli`: that name is export/_cli.py.

_binaries.quiet_tensorflow_startup()  # Before TensorFlow loads, in a binary's process only (tfvideo-export/serve/predict).

from export import _saved_model, _signatures, _streaming, _versions, _warmup  # noqa: E402,F401 -- registers public symbols.
