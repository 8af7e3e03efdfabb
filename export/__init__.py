"""SavedModel export for TF Serving (published as `tfvideo.export`)."""

from export import _saved_model, _signatures, _streaming, _versions, _warmup  # noqa: F401 -- registers public symbols.
