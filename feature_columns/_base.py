"""Base classes shared by the feature columns, raw-input checks and column serialization.

A column is an immutable description (a spec). The `FeatureLayer` owns the state a column
needs (lookup tables, embedding weights) and calls the column's transform with a
`_TransformContext` that caches per-call results, like TensorFlow's transformation cache.

Raw inputs follow `tf.feature_column`'s conventions: a feature is a dense tensor `[B]` or
`[B, N]`, a `tf.SparseTensor` `[B, N]`, or a `tf.RaggedTensor` `[B, None]`. In dense
categorical inputs the "missing" entries are `""` (strings) and `-1` (integers) and are
dropped; sparse and ragged inputs hold only present values.
"""

import importlib

import tensorflow as tf

from tfvideo.api._registry import Registry


class FeatureColumnError(ValueError):
    """A feature column got bad input or a bad definition; the message names the column and key."""


# class name -> column class (a registry, for deserialization).
_COLUMN_CLASSES = Registry("feature column class", error=FeatureColumnError)


def register_column(cls):
    """Class decorator: `deserialize_column` rebuilds `cls` from its class name.

    Registering the same class again (a reloaded module) replaces it; another class of a
    taken name is refused, as deserialization could not tell them apart.
    """
    previous = _COLUMN_CLASSES.get(cls.__name__) if cls.__name__ in _COLUMN_CLASSES else None
    same = previous is not None and (previous.__module__, previous.__qualname__) == (cls.__module__, cls.__qualname__)
    _COLUMN_CLASSES.register(cls.__name__, cls, overwrite=same)
    return cls


def serialize_column(column):
    return {"class_name": type(column).__name__, "config": column.get_config()}


def deserialize_column(config):
    if isinstance(config, FeatureColumn):
        return config
    if not isinstance(config, dict) or "class_name" not in config:
        raise FeatureColumnError(f"Not a serialized feature column: {config!r}")
    name = config["class_name"]
    if name not in _COLUMN_CLASSES:
        raise FeatureColumnError(f"Unknown feature column class {name!r}; known: {', '.join(_COLUMN_CLASSES.names())} "
                                 "(the video columns register when tfvideo.feature_columns is imported).")
    return _COLUMN_CLASSES.get(name).from_config(config.get("config", {}))


def function_to_config(fn, what):
    """A top-level function as "module:qualname" (lambdas and closures cannot be serialized)."""
    if fn is None:
        return None
    qualname = getattr(fn, "__qualname__", "")
    module = getattr(fn, "__module__", None)
    if not module or not qualname or "<" in qualname:
        raise FeatureColumnError(
            f"{what}: {fn!r} cannot be serialized; "
            "use a top-level (importable) function instead of a lambda or closure."
        )
    return f"{module}:{qualname}"


def function_from_config(text):
    if text is None or callable(text):
        return text
    module, _, qualname = text.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


class FeatureColumn:
    """Base of every column. Subclasses define `name`, `raw_keys`, `get_config`."""

    @property
    def name(self):
        raise NotImplementedError

    @property
    def parents(self):
        """Columns this column is built from."""
        return ()

    def raw_specs(self, multivalent=()):
        """{key: tf.TensorSpec of the batched raw feature}; keys in `multivalent` take [B, N]."""
        specs = {}
        for parent in self.parents:
            specs.update(parent.raw_specs(multivalent))
        return specs

    def create_state(self):
        """Keras layers this column owns (lookup, hashing, embedding), or None."""
        return

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and serialize_column(self) == serialize_column(other)

    def __hash__(self):
        return hash((type(self).__name__, self.name))

    def __repr__(self):
        return f"{type(self).__name__}({self.get_config()!r})"


class CategoricalColumn(FeatureColumn):
    """A column producing int64 ids in `[0, num_buckets)` (ragged `[B, None]`)."""

    @property
    def num_buckets(self):
        raise NotImplementedError

    def transform_ids(self, ctx):
        """(ids tf.RaggedTensor int64 [B, None], weights tf.RaggedTensor float32 [B, None] or None)."""
        raise NotImplementedError


class DenseColumn(FeatureColumn):
    """A column producing a float32 `[B, variable_shape]` tensor for the dense concat."""

    @property
    def variable_shape(self):
        raise NotImplementedError

    def transform_dense(self, ctx):
        raise NotImplementedError


class SequenceColumn(FeatureColumn):
    """A column producing its own model input (a clip or a feature sequence), not concatenated."""

    def transform_sequence(self, ctx):
        raise NotImplementedError


class _TransformContext:
    """One FeatureLayer call: the raw features, the owned state and a per-call cache."""

    def __init__(self, features, state):
        self.features = features
        self.state = state
        self._cache = {}

    def cached(self, column, role, fn):
        key = (id(column), role)
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def layer(self, column):
        return self.state[state_key(column)]

    def batch_size(self):
        for value in self.features.values():
            if isinstance(value, tf.SparseTensor):
                return tf.cast(value.dense_shape[0], tf.int32)
            if isinstance(value, (tf.Tensor, tf.RaggedTensor)) and value.shape.rank:
                return value.nrows(out_type=tf.int32) if isinstance(value, tf.RaggedTensor) else tf.shape(value)[0]
        return None

    def raw(self, column, key, default=None):
        """The raw feature `key` for `column`, or `default(batch_size)` if it is absent."""
        if key in self.features and self.features[key] is not None:
            value = self.features[key]
            if isinstance(value, (tf.SparseTensor, tf.RaggedTensor)):
                return value
            return tf.convert_to_tensor(value)
        if default is not None:
            batch = self.batch_size()
            if batch is not None:
                return default(batch)
        raise FeatureColumnError(
            f"Feature column {column.name!r}: raw feature {key!r} is missing from the input "
            f"(given keys: {sorted(self.features)})."
        )


def state_key(column):
    """A name for the state a column owns (also a valid Keras layer name)."""
    return f"{type(column).__name__}__{column.name}".replace("/", "_")


def check_dtype(column, key, tensor, want):
    """Checks a raw feature's dtype: `want` is "string", "int", "numeric", "string_or_int" or a tf.DType."""
    dtype = tensor.dtype
    ok = {
        "string": dtype == tf.string,
        "int": dtype.is_integer,
        "numeric": dtype.is_integer or dtype.is_floating or dtype == tf.bool,
        "string_or_int": dtype == tf.string or dtype.is_integer,
        "float": dtype.is_floating or dtype.is_integer,
    }.get(want, dtype == want)
    if not ok:
        raise FeatureColumnError(
            f"Feature column {column.name!r}: raw feature {key!r} has dtype {dtype.name}, expected {want}."
        )


def to_ragged_ids(column, key, tensor):
    """A raw categorical feature as a RaggedTensor [B, None], dropping missing dense entries.

    Dense `[B]` is read as one value per example; dense `[B, N]` drops `""`/`-1` entries
    (TensorFlow's `_to_sparse_input_and_drop_ignore_values`); sparse/ragged keep all values.
    """
    if isinstance(tensor, tf.SparseTensor):
        if tensor.shape.rank is not None and tensor.shape.rank != 2:
            raise FeatureColumnError(
                f"Feature column {column.name!r}: sparse feature {key!r} must be rank 2 [B, N], "
                f"got shape {tensor.shape}."
            )
        return tf.RaggedTensor.from_sparse(tensor)
    if isinstance(tensor, tf.RaggedTensor):
        if tensor.ragged_rank != 1 or tensor.shape.rank != 2:
            raise FeatureColumnError(
                f"Feature column {column.name!r}: ragged feature {key!r} must be [B, None], got shape {tensor.shape}."
            )
        return tensor
    rank = tensor.shape.rank
    if rank == 1:
        tensor = tensor[:, None]
    elif rank != 2:
        raise FeatureColumnError(
            f"Feature column {column.name!r}: raw feature {key!r} must be [B] or [B, N], got shape {tensor.shape}."
        )
    ignore = "" if tensor.dtype == tf.string else tf.cast(-1, tensor.dtype)
    return tf.ragged.boolean_mask(tensor, tf.not_equal(tensor, ignore))


def to_dense_float(column, key, tensor, shape):
    """A raw numeric feature as float32 [B, prod(shape)]; [B] is accepted for shape (1,)."""
    if isinstance(tensor, tf.SparseTensor):
        tensor = tf.sparse.to_dense(tensor)
    elif isinstance(tensor, tf.RaggedTensor):
        raise FeatureColumnError(
            f"Feature column {column.name!r}: raw feature {key!r} must be dense, got a RaggedTensor."
        )
    check_dtype(column, key, tensor, "numeric")
    size = 1
    for d in shape:
        size *= d
    if tensor.shape.rank == 0:
        raise FeatureColumnError(f"Feature column {column.name!r}: raw feature {key!r} must be batched, got a scalar.")
    if tensor.shape.rank == 1:
        tensor = tensor[:, None]
    static = tensor.shape[1:]
    if static.is_fully_defined() and static.num_elements() != size:
        raise FeatureColumnError(
            f"Feature column {column.name!r}: raw feature {key!r} has shape {tensor.shape}, "
            f"expected [B, {', '.join(map(str, shape))}]."
        )
    return tensor, size
