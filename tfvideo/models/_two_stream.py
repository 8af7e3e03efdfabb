"""Two-stream networks: RGB + stacked optical flow, late fusion of class scores."""

import keras
import numpy as np
from keras import ops

from tfvideo.api._export import tf_export


def _layers_with_weights(model):
    inner = getattr(model, "backbone", model)
    return {layer.name: layer for layer in inner.layers if layer.weights}


@tf_export("tfvideo.models.cross_modality_init")
def cross_modality_init(rgb_model, flow_model):
    """Initializes a flow network from an RGB one (TSN's cross-modality initialization).

    Backbone weights are copied by layer name; a conv whose input channels differ (the
    first one: 3 RGB channels vs 2L flow channels) gets the RGB kernel averaged over
    its input channels and replicated to the flow network's channels. The classifiers
    are left alone. Returns the names of the layers initialized.
    """
    source, target = _layers_with_weights(rgb_model), _layers_with_weights(flow_model)
    done = []
    for name, layer in target.items():
        if name not in source:
            continue
        values = [np.asarray(ops.convert_to_numpy(v)) for v in source[name].weights]
        shapes = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != shapes:
            kernel = values[0]
            if len(values) != len(shapes) or kernel.ndim < 3 or kernel.shape[:-2] + kernel.shape[-1:] != (
                    shapes[0][:-2] + shapes[0][-1:]):
                raise ValueError(f"cross_modality_init: layer {name!r} has weights {shapes} in the flow network and "
                                 f"{[v.shape for v in values]} in the RGB one.")
            mean = kernel.mean(axis=-2, keepdims=True)
            values[0] = np.repeat(mean, shapes[0][-2], axis=-2)
        layer.set_weights(values)
        done.append(name)
    return done


@tf_export("tfvideo.models.TwoStream")
@keras.saving.register_keras_serializable(package="tfvideo")
class TwoStream(keras.Model):
    """Late fusion of an RGB and a flow recognizer.

    Input: a dict `{"rgb": [B, (V,) T, H, W, 3], "flow": [B, (V,) T, H, W, 2L]}` (or a
    pair). Output: `(w_rgb * s_rgb + w_flow * s_flow) / (w_rgb + w_flow)` where s are
    the class scores (logits, or softmax probabilities with `fuse_softmax=True`); TSN
    weighs RGB:flow as 1:1.5.
    """

    def __init__(self, rgb, flow, stream_weights=(1.0, 1.5), fuse_softmax=False, **kwargs):
        super().__init__(**kwargs)
        self.rgb = keras.saving.deserialize_keras_object(rgb) if isinstance(rgb, dict) else rgb
        self.flow = keras.saving.deserialize_keras_object(flow) if isinstance(flow, dict) else flow
        self.stream_weights = tuple(float(w) for w in stream_weights)
        if len(self.stream_weights) != 2 or sum(self.stream_weights) <= 0:
            raise ValueError(f"TwoStream: stream_weights={stream_weights} must be two weights with a positive sum.")
        self.fuse_softmax = bool(fuse_softmax)

    def build(self, input_shape):
        rgb_shape, flow_shape = (input_shape["rgb"], input_shape["flow"]) if isinstance(input_shape, dict) else input_shape
        for model, shape in ((self.rgb, rgb_shape), (self.flow, flow_shape)):
            if not model.built:
                model.build(shape)
        self.built = True

    def call(self, inputs, training=None):
        rgb, flow = (inputs["rgb"], inputs["flow"]) if isinstance(inputs, dict) else inputs
        s_rgb = self.rgb(rgb, training=training)
        s_flow = self.flow(flow, training=training)
        if self.fuse_softmax:
            s_rgb, s_flow = ops.softmax(s_rgb, axis=-1), ops.softmax(s_flow, axis=-1)
        w_rgb, w_flow = self.stream_weights
        return (w_rgb * s_rgb + w_flow * s_flow) / (w_rgb + w_flow)

    def get_config(self):
        return {
            **super().get_config(),
            "rgb": keras.saving.serialize_keras_object(self.rgb),
            "flow": keras.saving.serialize_keras_object(self.flow),
            "stream_weights": self.stream_weights,
            "fuse_softmax": self.fuse_softmax,
        }
