"""SavedModel export for TF Serving (published as `tfvideo.export`)."""
