"""The feature-column API on Keras 3 (published as `tfvideo.feature_columns`)."""
