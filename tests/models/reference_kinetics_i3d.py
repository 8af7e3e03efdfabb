"""An independent TensorFlow forward pass of DeepMind's I3D RGB network, written from
google-deepmind/kinetics-i3d `i3d.py` (`Unit3D`, `InceptionI3d._build`) read as
documentation, on a TF1 name-based checkpoint with their variable names.

Sonnet's `Unit3D`: conv3d SAME (no bias) -> BatchNorm(offset only, epsilon 1e-3, moving
statistics at inference) -> ReLU. Head: avg_pool3d [2, 7, 7] VALID -> 1x1x1 conv with
bias -> squeeze space -> mean over time.
"""

import numpy as np
import tensorflow as tf

# (Branch_0 1x1, Branch_1 1x1, Branch_1 3x3, Branch_2 1x1, Branch_2 3x3, Branch_3 1x1) per block.
MIXED = [("Mixed_3b", (64, 96, 128, 16, 32, 32)), ("Mixed_3c", (128, 128, 192, 32, 96, 64)),
         ("Mixed_4b", (192, 96, 208, 16, 48, 64)), ("Mixed_4c", (160, 112, 224, 24, 64, 64)),
         ("Mixed_4d", (128, 128, 256, 24, 64, 64)), ("Mixed_4e", (112, 144, 288, 32, 64, 64)),
         ("Mixed_4f", (256, 160, 320, 32, 128, 128)), ("Mixed_5b", (256, 160, 320, 32, 128, 128)),
         ("Mixed_5c", (384, 192, 384, 48, 128, 128))]
SCOPE = "RGB/inception_i3d/"


def random_checkpoint(path, num_classes, scale=1.0, seed=0):
    """Writes a TF1 checkpoint of random I3D variables under DeepMind's names (channels
    scaled by `scale`, rounded); returns {name: array}."""
    rng = np.random.default_rng(seed)
    values = {}

    def c(n):
        return max(round(n * scale), 1)

    def add(name, k, cin, cout):
        values[f"{SCOPE}{name}/conv_3d/w"] = rng.normal(0, np.sqrt(2.0 / (k**3 * cin)), (k, k, k, cin, cout))
        values[f"{SCOPE}{name}/batch_norm/beta"] = rng.normal(0, 0.1, (1, 1, 1, 1, cout))
        values[f"{SCOPE}{name}/batch_norm/moving_mean"] = rng.normal(0, 0.1, (1, 1, 1, 1, cout))
        values[f"{SCOPE}{name}/batch_norm/moving_variance"] = rng.uniform(0.5, 1.5, (1, 1, 1, 1, cout))

    add("Conv3d_1a_7x7", 7, 3, c(64))
    add("Conv3d_2b_1x1", 1, c(64), c(64))
    add("Conv3d_2c_3x3", 3, c(64), c(192))
    cin = c(192)
    for block, ch in MIXED:
        c0, c1, c2, c3, c4, c5 = (c(n) for n in ch)
        add(f"{block}/Branch_0/Conv3d_0a_1x1", 1, cin, c0)
        add(f"{block}/Branch_1/Conv3d_0a_1x1", 1, cin, c1)
        add(f"{block}/Branch_1/Conv3d_0b_3x3", 3, c1, c2)
        add(f"{block}/Branch_2/Conv3d_0a_1x1", 1, cin, c3)
        add(f"{block}/Branch_2/Conv3d_0b_3x3", 3, c3, c4)
        add(f"{block}/Branch_3/Conv3d_0b_1x1", 1, cin, c5)
        cin = c0 + c2 + c4 + c5
    values[f"{SCOPE}Logits/Conv3d_0c_1x1/conv_3d/w"] = rng.normal(0, 0.05, (1, 1, 1, cin, num_classes))
    values[f"{SCOPE}Logits/Conv3d_0c_1x1/conv_3d/b"] = rng.normal(0, 0.1, (num_classes,))
    values = {k: v.astype(np.float32) for k, v in values.items()}
    with tf.Graph().as_default():
        variables = {k: tf.compat.v1.Variable(v, name=k.replace("/", "_")) for k, v in values.items()}
        saver = tf.compat.v1.train.Saver(var_list=variables)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, path, write_meta_graph=False)
    return values


def forward(path, clip):
    """Logits [B, K] of the checkpoint at `path` on `clip` [B, T, 224, 224, 3] (eager TF ops)."""
    reader = tf.train.load_checkpoint(path)

    def get(name):
        return tf.constant(reader.get_tensor(SCOPE + name))

    def unit(x, name, stride=1):
        x = tf.nn.conv3d(x, get(f"{name}/conv_3d/w"), [1, stride, stride, stride, 1], "SAME")
        mean, var = get(f"{name}/batch_norm/moving_mean"), get(f"{name}/batch_norm/moving_variance")
        return tf.nn.relu((x - mean) * tf.math.rsqrt(var + 1e-3) + get(f"{name}/batch_norm/beta"))

    def max_pool(x, k, s):
        return tf.nn.max_pool3d(x, [1] + list(k) + [1], [1] + list(s) + [1], "SAME")

    x = unit(tf.constant(clip), "Conv3d_1a_7x7", stride=2)
    x = max_pool(x, (1, 3, 3), (1, 2, 2))
    x = unit(unit(x, "Conv3d_2b_1x1"), "Conv3d_2c_3x3")
    x = max_pool(x, (1, 3, 3), (1, 2, 2))
    for block, _ in MIXED:
        if block == "Mixed_4b":
            x = max_pool(x, (3, 3, 3), (2, 2, 2))
        if block == "Mixed_5b":
            x = max_pool(x, (2, 2, 2), (2, 2, 2))
        b0 = unit(x, f"{block}/Branch_0/Conv3d_0a_1x1")
        b1 = unit(unit(x, f"{block}/Branch_1/Conv3d_0a_1x1"), f"{block}/Branch_1/Conv3d_0b_3x3")
        b2 = unit(unit(x, f"{block}/Branch_2/Conv3d_0a_1x1"), f"{block}/Branch_2/Conv3d_0b_3x3")
        b3 = unit(max_pool(x, (3, 3, 3), (1, 1, 1)), f"{block}/Branch_3/Conv3d_0b_1x1")
        x = tf.concat([b0, b1, b2, b3], axis=4)
    x = tf.nn.avg_pool3d(x, [1, 2, 7, 7, 1], [1, 1, 1, 1, 1], "VALID")
    logits = tf.nn.conv3d(x, get("Logits/Conv3d_0c_1x1/conv_3d/w"), [1, 1, 1, 1, 1], "SAME")
    logits = tf.squeeze(logits + get("Logits/Conv3d_0c_1x1/conv_3d/b"), [2, 3])
    return tf.reduce_mean(logits, axis=1).numpy()
