"""SavedModel export for TF Serving (published as `tfvideo.export`)."""

from export import _saved_model, _signatures, _versions, _warmup  # noqa: F401 -- importing registers the public symbols.
