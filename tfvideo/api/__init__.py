"""tf_export machinery and the golden API listing (not a public namespace)."""
