"""ModelServer in-process (no gRPC): version policies, unloading, request checks."""

import os
import shutil

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import model_pb2, predict_pb2
from tensorflow_serving.config import model_server_config_pb2

from tests.export.conftest import CLIP_LENGTH
from tfvideo import export as tfv_export
from tfvideo import serving


@pytest.fixture(scope="module")
def two_versions(tiny_model_dir, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("policy"))
    for _ in range(2):
        tfv_export.export_saved_model(root, model_dir=tiny_model_dir, model_name="m", input_types="frames",
                                      warmup=False)
    return root


def _request(version=None, frames=None, signature="frames"):
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="m", signature_name=signature))
    if version is not None:
        request.model_spec.version.value = version
    frames = np.full((1, CLIP_LENGTH, 32, 32, 3), 100, np.uint8) if frames is None else frames
    request.inputs["frames"].CopyFrom(tf.make_tensor_proto(frames))
    return request


def _config(root, policy_text):
    return text_format.Parse(
        f'model_config_list {{ config {{ name: "m" base_path: "{root}/m" model_platform: "tensorflow" '
        f"{policy_text} }} }}",
        model_server_config_pb2.ModelServerConfig(),
    )


def test_specific_version_policy_serves_only_listed_versions(two_versions):
    server = serving.ModelServer(_config(two_versions, "model_version_policy { specific { versions: 1 } }"))
    assert server.refresh() == {"m": [1]}
    assert server.predict(_request()).model_spec.version.value == 1
    with pytest.raises(serving._server.RequestError) as info:
        server.predict(_request(version=2))
    assert info.value.code == grpc.StatusCode.NOT_FOUND and "no version 2" in info.value.message


def test_latest_policy_serves_only_the_newest_version_and_falls_back_when_it_is_removed(two_versions, tmp_path):
    root = str(tmp_path)
    shutil.copytree(os.path.join(two_versions, "m"), os.path.join(root, "m"))
    server = serving.ModelServer({"m": os.path.join(root, "m")})
    assert server.refresh() == {"m": [2]}
    assert server.predict(_request()).model_spec.version.value == 2
    with pytest.raises(serving._server.RequestError) as info:  # As TF Serving: version 1 is not served.
        server.predict(_request(version=1))
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert "no version 1: version policy latest 1 does not serve it; serving 2" in info.value.message
    assert server.refresh() == {"m": [2]}
    shutil.rmtree(os.path.join(root, "m", "2"))
    assert server.refresh() == {"m": [1]}
    response = server.predict(_request())
    assert response.model_spec.version.value == 1
    assert set(response.outputs) == {"logits", "probabilities", "top_k_indices", "top_k_labels"}


def test_all_policy_serves_every_version(two_versions):
    server = serving.ModelServer(_config(two_versions, "model_version_policy { all {} }"))
    assert server.refresh() == {"m": [1, 2]}
    assert server.predict(_request()).model_spec.version.value == 2
    assert server.predict(_request(version=1)).model_spec.version.value == 1


def test_output_filter_and_unknown_output(two_versions):
    server = serving.ModelServer({"m": os.path.join(two_versions, "m")})
    server.refresh()
    request = _request()
    request.output_filter.append("top_k_labels")
    assert list(server.predict(request).outputs) == ["top_k_labels"]
    request.output_filter.append("embedding")
    with pytest.raises(serving._server.RequestError, match="output_filter names 'embedding'"):
        server.predict(request)


def test_missing_base_path_names_the_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="model 'x': base path"):
        serving.ModelServer({"x": str(tmp_path / "missing")})
