"""FeatureLayer: a dict of raw features -> model inputs, in tf.data, in a model, in a SavedModel."""

import json
import os

import keras
import tensorflow as tf

from feature_columns import _base, _categorical, _crossed, _numeric
from tfvideo.api._export import tf_export

SPEC_FORMAT = "tfvideo.feature_spec"
SPEC_VERSION = 1
DENSE_KEY = "dense"


def _walk(columns):
    """Every column and, recursively, the columns it is built from (parents first)."""
    seen = []
    for column in columns:
        for parent in _walk(column.parents):
            if not any(parent is s for s in seen):
                seen.append(parent)
        if not any(column is s for s in seen):
            seen.append(column)
    return seen


def _merge_specs(specs, new, column):
    for key, spec in new.items():
        if key in specs and specs[key] != spec:
            raise _base.FeatureColumnError(
                f"Feature column {column.name!r}: raw feature {key!r} is read as {spec} here "
                f"but as {specs[key]} by another column."
            )
        specs[key] = spec
    return specs


@tf_export("tfvideo.feature_columns.make_parse_example_spec")
def make_parse_example_spec(columns):
    """The `tf.io.parse_example` spec of the tabular columns' raw features.

    Same as `tf.feature_column.make_parse_example_spec`: numeric columns are
    `FixedLenFeature(shape, dtype, default_value)` (so an absent value takes the column's
    default, and is an error without one), categorical keys are `VarLenFeature` (parsed as
    `tf.SparseTensor`, which `FeatureLayer` accepts). Use it as the `context_features` of a
    SequenceExample to read tabular context next to the video frames. Video and
    frame-feature columns are skipped (frames live in the feature lists).
    """
    spec = {}
    for column in _walk([_base.deserialize_column(c) for c in columns]):
        new = {}
        if isinstance(column, _numeric.NumericColumn):
            new[column.key] = tf.io.FixedLenFeature(column.shape, column.dtype, column.default_value)
        elif isinstance(column, (_categorical._VocabularyColumn, _categorical.HashedColumn)):
            new[column.key] = tf.io.VarLenFeature(column.dtype)
        elif isinstance(column, _categorical.IdentityColumn):
            new[column.key] = tf.io.VarLenFeature(tf.int64)
        elif isinstance(column, _categorical.WeightedColumn):
            new[column.weight_feature_key] = tf.io.VarLenFeature(column.dtype)
        elif isinstance(column, _crossed.CrossedColumn):
            new.update({k: tf.io.VarLenFeature(tf.string) for k in column.keys if isinstance(k, str)})
        for key, value in new.items():
            if key in spec and spec[key] != value:
                raise _base.FeatureColumnError(f"Feature column {column.name!r}: raw feature {key!r} parsed two ways.")
            spec[key] = value
    return spec


@tf_export("tfvideo.feature_columns.FeatureLayer")
@keras.saving.register_keras_serializable(package="tfvideo")
class FeatureLayer(keras.layers.Layer):
    """Turns a dict of raw features into model inputs, the same way in training and serving.

    Output: with only tabular (dense) columns, the float32 concat `[B, D]` of the columns
    sorted by name (the order of `tf.feature_column`'s `input_layer` / `DenseFeatures`).
    With any video or frame-feature column, a dict: `"dense"` -> that concat (if there are
    tabular columns) and one entry per video / frame-feature column under its key
    (`[B, views, T, S, S, C]` clips, `[B, T, dim]` sequences).

    Raw inputs: dense `[B]` / `[B, N]` tensors (missing categorical entries are "" or -1),
    `tf.SparseTensor` or `tf.RaggedTensor` `[B, None]`, as in `tf.feature_column`. Keys not
    read by a column are ignored, so a whole tf.data element can be passed.

    TensorFlow backend only: string hashing, vocabulary lookups and JPEG decoding are
    TensorFlow ops (through Keras' StringLookup / IntegerLookup / Hashing / Discretization
    layers where their semantics match `tf.feature_column`'s, `tf.sparse.cross_hashed`
    for crosses). Embedding weights are Keras `Embedding` layers and train with the model.

    Args:
      columns: feature columns (or their serialized dicts).
      multivalent_keys: raw categorical keys that take several values per example; their
        serving input is `[B, N]` (padded with "" / -1) instead of `[B]`.
    """

    def __init__(self, columns, multivalent_keys=(), **kwargs):
        kwargs.setdefault("autocast", False)  # Raw features keep their dtypes under mixed precision.
        super().__init__(**kwargs)
        columns = [_base.deserialize_column(c) for c in columns]
        if not columns:
            raise _base.FeatureColumnError("FeatureLayer: needs at least one column.")
        for column in columns:
            if not isinstance(column, (_base.DenseColumn, _base.SequenceColumn)):
                raise _base.FeatureColumnError(
                    f"FeatureLayer: column {column.name!r} is categorical; "
                    "wrap it in indicator_column or embedding_column."
                )
        names = [c.name for c in columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise _base.FeatureColumnError(f"FeatureLayer: duplicate column names {dupes}.")
        self._columns = columns
        self._dense_columns = sorted([c for c in columns if isinstance(c, _base.DenseColumn)], key=lambda c: c.name)
        self._sequence_columns = [c for c in columns if isinstance(c, _base.SequenceColumn)]
        if any(c.name == DENSE_KEY for c in self._sequence_columns):
            raise _base.FeatureColumnError(
                f"FeatureLayer: a video/frame-feature column may not be named {DENSE_KEY!r}."
            )
        self.multivalent_keys = sorted(set(multivalent_keys))
        state = {}
        configs = {}
        for column in _walk(columns):
            key = _base.state_key(column)
            if key in configs and configs[key] != column.get_config():
                raise _base.FeatureColumnError(f"FeatureLayer: two different columns are both named {column.name!r}.")
            configs[key] = column.get_config()
            if key not in state:
                layer = column.create_state()
                if layer is not None:
                    state[key] = layer
        self.column_layers = state
        self._input_specs = self._raw_specs()

    @property
    def columns(self):
        return list(self._columns)

    @property
    def returns_dict(self):
        return bool(self._sequence_columns)

    @property
    def dense_size(self):
        """D, the width of the dense concat."""
        total = 0
        for column in self._dense_columns:
            size = 1
            for d in column.variable_shape:
                size *= d
            total += size
        return total

    def _raw_specs(self):
        specs = {}
        for column in self._columns:
            _merge_specs(specs, column.raw_specs(set(self.multivalent_keys)), column)
        return specs

    def serving_input_signature(self):
        """{raw key: tf.TensorSpec} of the batched raw features (for a SavedModel signature).

        Numeric `[B, *shape]` in the column's dtype; categorical `[B]` (or `[B, N]` for
        `multivalent_keys`); video columns take encoded JPEG frames string `[B, T]`;
        frame-feature columns float `[B, T, dim]`.
        """
        return dict(sorted(self._input_specs.items()))

    def keras_inputs(self):
        """{raw key: keras.Input} matching `serving_input_signature()` (for functional models)."""
        return {
            key: keras.Input(shape=tuple(spec.shape[1:]), dtype=spec.dtype.name, name=key)
            for key, spec in self.serving_input_signature().items()
        }

    def build(self, input_shape=None):
        self.built = True

    def call(self, features):
        if not isinstance(features, dict):
            raise _base.FeatureColumnError(
                f"FeatureLayer: expects a dict of raw features, got {type(features).__name__}."
            )
        ctx = _base._TransformContext(dict(features), self.column_layers)
        dense = None
        if self._dense_columns:
            parts = [column.transform_dense(ctx) for column in self._dense_columns]
            dense = parts[0] if len(parts) == 1 else tf.concat(parts, axis=-1)
        if not self._sequence_columns:
            return dense
        out = {} if dense is None else {DENSE_KEY: dense}
        for column in self._sequence_columns:
            out[column.name] = column.transform_sequence(ctx)
        return out

    def get_config(self):
        return {
            **super().get_config(),
            "columns": [_base.serialize_column(c) for c in self._columns],
            "multivalent_keys": list(self.multivalent_keys),
        }

    def to_spec(self):
        """A JSON-able dict describing the columns (what `--feature_spec` files hold)."""
        return {
            "format": SPEC_FORMAT,
            "version": SPEC_VERSION,
            "columns": [_base.serialize_column(c) for c in self._columns],
            "multivalent_keys": list(self.multivalent_keys),
        }

    def save_spec(self, path):
        """Writes `to_spec()` as JSON to `path`."""
        with tf.io.gfile.GFile(os.fspath(path), "w") as f:
            f.write(json.dumps(self.to_spec(), indent=2, sort_keys=True))
        return path

    @classmethod
    def from_spec(cls, spec, **kwargs):
        """A FeatureLayer from a `to_spec()` dict or the path of its JSON file."""
        where = "feature spec"
        if isinstance(spec, (str, os.PathLike)):
            where = os.fspath(spec)
            if not tf.io.gfile.exists(where):
                raise _base.FeatureColumnError(f"Feature spec file {where} does not exist.")
            with tf.io.gfile.GFile(where, "r") as f:
                try:
                    spec = json.loads(f.read())
                except json.JSONDecodeError as e:
                    raise _base.FeatureColumnError(
                        f"Feature spec file {where}:{e.lineno}: invalid JSON ({e.msg})."
                    ) from None
        if not isinstance(spec, dict) or spec.get("format") != SPEC_FORMAT:
            raise _base.FeatureColumnError(f"{where}: not a {SPEC_FORMAT} (missing or wrong 'format').")
        if spec.get("version") != SPEC_VERSION:
            raise _base.FeatureColumnError(f"{where}: version {spec.get('version')!r} is not {SPEC_VERSION}.")
        if "columns" not in spec:
            raise _base.FeatureColumnError(f"{where}: has no 'columns'.")
        return cls(spec["columns"], multivalent_keys=spec.get("multivalent_keys", ()), **kwargs)
