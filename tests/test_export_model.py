"""TorchScript and ONNX export: exported outputs equal eager, dynamic shapes, atomic files."""

import json

import numpy as np
import pytest
import torch

from napari_ultramn.model.export import (
    OUTPUT_NAMES,
    export_onnx,
    export_onnx_stream,
    export_torchscript,
    load_torchscript_metadata,
)
from napari_ultramn.model.network import build_model
from napari_ultramn.model.stream import StreamingUltraMN

# torch.jit.save/load are deprecated in torch >= 2.10 but still the way to ship TorchScript
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

P = 5
LABELS = ["transverse_wrist", "transverse_forearm", "longitudinal_wrist", "longitudinal_forearm", "non_standard"]


def _model(name, **kwargs):
    torch.manual_seed(0)
    model = build_model(name, P, base_channels=4, **kwargs)
    for m in model.modules():  # eval statistics as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_torchscript_matches_eager_at_other_shapes_and_leaves_the_model_alone(tmp_path):
    model = _model("ultramn").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    path = export_torchscript(model, tmp_path / "m.pt", window=4, size=(32, 32), plane_labels=LABELS)
    assert path == tmp_path / "m.pt" and [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    assert model.training  # export works on its own eval-mode copy
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.eval()
    loaded = torch.jit.load(str(path))
    x = torch.rand(2, 1, 6, 48, 64)  # batch, window and size differ from the trace
    with torch.no_grad():
        got, want = loaded(x), model(x)
    for key in OUTPUT_NAMES:
        torch.testing.assert_close(got[key], want[key], atol=1e-4, rtol=1e-4)
    meta = load_torchscript_metadata(path)
    assert meta["config"] == model.config and meta["plane_labels"] == LABELS


@pytest.mark.parametrize("name, kwargs", [("ultramn", {}), ("unet2d", {})])
def test_onnx_matches_eager_with_dynamic_time(tmp_path, name, kwargs):
    import onnxruntime

    model = _model(name, **kwargs)
    path = export_onnx(model, tmp_path / "m.onnx", window=4, size=(32, 32), plane_labels=LABELS)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 1, 4, 32, 32), (3, 1, 9, 40, 24), (1, 1, 1, 32, 32)]:
        x = torch.rand(*shape)
        got = session.run(list(OUTPUT_NAMES), {"frames": x.numpy()})
        with torch.no_grad():
            want = model(x)
        for key, value in zip(OUTPUT_NAMES, got):
            np.testing.assert_allclose(value, want[key].numpy(), atol=1e-4, rtol=1e-4)
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["config"]) == model.config
    assert json.loads(meta["plane_labels"]) == LABELS


def test_export_refuses_bad_arguments(tmp_path):
    model = _model("ultramn")
    with pytest.raises(ValueError, match=r"divisible by 2\*\*depth = 8; got 30x32"):
        export_onnx(model, tmp_path / "m.onnx", size=(30, 32))
    with pytest.raises(ValueError, match="window must be an int >= 1"):
        export_torchscript(model, tmp_path / "m.pt", window=0)
    with pytest.raises(ValueError, match="plane_labels has 2 names but the model has n_planes=5"):
        export_torchscript(model, tmp_path / "m.pt", plane_labels=["a", "b"])
    with pytest.raises(TypeError, match="needs a model from build_model"):
        export_torchscript(torch.nn.Conv2d(1, 1, 1), tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_onnx_stream_step_with_fed_back_state_equals_the_stream(tmp_path):
    import onnxruntime

    model = _model("ultramn")
    path = export_onnx_stream(model, tmp_path / "s.onnx", size=(32, 32), plane_labels=LABELS)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shapes = json.loads(session.get_modelmeta().custom_metadata_map["inputs"])
    assert len(shapes) == 3 + 3  # frame, feature_sum, count + one state per temporal conv
    state = {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}
    outputs = [o.name for o in session.get_outputs()]
    stream = StreamingUltraMN(model)
    rng = np.random.default_rng(0)
    for _ in range(5):
        frame = rng.random((32, 32), dtype=np.float32)
        got = dict(zip(outputs, session.run(outputs, {**state, "frame": frame[None, None]})))
        want = stream.step(frame)
        np.testing.assert_allclose(got["mask_prob"], want["mask_prob"], atol=1e-5)
        np.testing.assert_allclose(got["presence"], [want["presence"]], atol=1e-5)
        np.testing.assert_allclose(got["plane_probs"], want["plane_probs"], atol=1e-5)
        np.testing.assert_allclose(got["clip_plane_probs"], want["clip_plane_probs"], atol=1e-5)
        state.update({name: got[f"{name}_out"] for name in state if name != "frame"})
