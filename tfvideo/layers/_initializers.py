"""Weight initializers shared by the layers."""

import keras


def torch_default():
    """PyTorch's default `nn.Linear` / `nn.ConvNd` kernel init: uniform in +-1/sqrt(fan_in).

    (kaiming_uniform with a = sqrt(5): bound sqrt(6 / ((1 + 5) fan_in)).) For modules that
    the authors' PyTorch code leaves at its default init.
    """
    return keras.initializers.VarianceScaling(scale=1 / 3, mode="fan_in", distribution="uniform")
