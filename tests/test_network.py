"""UltraMNet and baselines: output contract, causality, validation, config round trip."""

import subprocess
import sys

import pytest
import torch

from napari_ultramn.model.baselines import UNet2D
from napari_ultramn.model.network import UltraMNet, build_model, model_from_config
from tests.model_helpers import trained_looking

P = 5
TINY = {"base_channels": 4}
MODELS = [
    ("ultramn", {}),
    ("ultramn", {"factorised": False}),
    ("ultramn", {"norm": "group"}),
    ("ultramn_notemporal", {}),
    ("unet2d", {}),
]


@pytest.mark.parametrize("name, kwargs", MODELS)
def test_output_shapes_and_finite_logits(name, kwargs):
    torch.manual_seed(0)
    model = build_model(name, P, **TINY, **kwargs)
    out = model(torch.rand(2, 1, 4, 32, 32))
    assert list(out) == ["seg", "presence", "plane_frame", "plane_clip"]
    assert out["seg"].shape == (2, 1, 4, 32, 32)
    assert out["presence"].shape == (2, 4)
    assert out["plane_frame"].shape == (2, 4, P)
    assert out["plane_clip"].shape == (2, P)
    assert all(torch.isfinite(v).all() for v in out.values())
    sum(v.float().mean() for v in out.values()).backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name, kwargs", MODELS)
def test_outputs_are_causal(name, kwargs):
    """Changing frames >= 3 leaves the per-frame outputs of frames 0-2 unchanged (eval mode)."""
    torch.manual_seed(1)
    model = trained_looking(build_model(name, P, **TINY, **kwargs))
    x = torch.rand(1, 1, 5, 32, 32)
    y = x.clone()
    y[:, :, 3:] = torch.rand(1, 1, 2, 32, 32)
    with torch.no_grad():
        a, b = model(x), model(y)
    torch.testing.assert_close(a["seg"][:, :, :3], b["seg"][:, :, :3])
    torch.testing.assert_close(a["plane_frame"][:, :3], b["plane_frame"][:, :3])
    torch.testing.assert_close(a["presence"][:, :3], b["presence"][:, :3])
    assert not torch.allclose(a["seg"][:, :, 3:], b["seg"][:, :, 3:])


def test_temporal_context_only_where_asked():
    torch.manual_seed(2)
    x = torch.rand(1, 1, 4, 32, 32)
    y = x.clone()
    y[:, :, 0] = torch.rand(32, 32)  # change the past only
    for name, uses_past in [("ultramn", True), ("ultramn_notemporal", False), ("unet2d", False)]:
        model = trained_looking(build_model(name, P, **TINY))
        with torch.no_grad():
            same = torch.allclose(model(x)["seg"][:, :, 1], model(y)["seg"][:, :, 1])
        assert same != uses_past, name
    assert build_model("ultramn", P, depth=3).temporal_receptive_field == 1 + 3 * 2
    assert build_model("ultramn_notemporal", P).temporal_receptive_field == 1


@pytest.mark.parametrize("name, kwargs", MODELS)
def test_config_rebuilds_the_same_model(name, kwargs):
    torch.manual_seed(3)
    model = trained_looking(build_model(name, P, **TINY, **kwargs))
    cfg = model.config
    assert cfg["name"] == name and cfg["n_planes"] == P
    again = model_from_config(cfg)
    assert type(again) is type(model) and again.config == cfg
    again.load_state_dict(model.state_dict())
    again.eval()
    x = torch.rand(1, 1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again(x)["seg"], model(x)["seg"])
    assert type(model).from_config(cfg).config == cfg


def test_default_sizes():
    model = UltraMNet(5)
    assert model.config == {
        "name": "ultramn",
        "n_planes": 5,
        "in_channels": 1,
        "base_channels": 16,
        "depth": 3,
        "temporal_kernel": 3,
        "factorised": True,
        "norm": "batch",
    }
    assert sum(p.numel() for p in model.parameters()) < 500_000
    assert isinstance(build_model("unet2d", 5), UNet2D)


@pytest.mark.parametrize(
    "shape, message",
    [
        ((1, 1, 4, 30, 32), r"divisible by 2\*\*depth = 8; got 30x32"),
        ((1, 4, 32, 32), r"expected input \(B, C, T, H, W\)"),
        ((1, 2, 4, 32, 32), "expected 1 input channel"),
    ],
)
def test_bad_input_is_reported(shape, message):
    model = build_model("ultramn", P, **TINY)
    with pytest.raises(ValueError, match=message):
        model(torch.rand(*shape))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: UltraMNet(1), "n_planes must be an int >= 2"),
        (lambda: UltraMNet(5, temporal_kernel=0), "temporal_kernel must be an int >= 1"),
        (lambda: UltraMNet(5, depth=0), "depth must be an int from 1 to 6"),
        (lambda: UltraMNet(5, norm="layer"), "norm must be one of batch, group, instance"),
        (lambda: UNet2D(5, base_channels=1), "base_channels must be an int >= 2"),
        (lambda: build_model("resnet", 5), "unknown model 'resnet'"),
        (lambda: build_model("ultramn_notemporal", 5, temporal_kernel=3), "temporal_kernel=1"),
        (lambda: model_from_config({"n_planes": 5}), "no 'name'"),
    ],
)
def test_bad_arguments_are_reported(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_importing_the_model_package_does_not_import_torch():
    code = "import sys, napari_ultramn.model; assert 'torch' not in sys.modules, 'torch imported'; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _moving_nerve_batch(rng, b=4, t=4, s=64):
    """Speckle frames; planes 0 and 1 show a dark drifting ellipse, plane 2 has no nerve."""
    yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    frames, masks = torch.zeros(b, 1, t, s, s), torch.zeros(b, 1, t, s, s)
    plane = torch.zeros(b, t, dtype=torch.long)
    for i in range(b):
        p = int(rng.integers(0, 3))
        cy, cx = rng.uniform(0.3 * s, 0.7 * s, 2)
        vy, vx = rng.normal(0, 1.5, 2)
        r = rng.uniform(0.08 * s, 0.15 * s)
        for j in range(t):
            img = torch.from_numpy(rng.rayleigh(0.25, (s, s))).float() * (0.6 + 0.4 * (p == 1))
            if p == 2:
                img += 0.2 * torch.sin(yy / 3.0)
            else:
                nerve = ((yy - cy - vy * j) / r) ** 2 + ((xx - cx - vx * j) / (1.5 * r)) ** 2 < 1
                img[nerve] *= 0.3
                masks[i, 0, j] = nerve.float()
            frames[i, 0, j] = img.clamp(0, 1)
            plane[i, j] = p
    return {
        "frames": frames,
        "masks": masks,
        "plane": plane,
        "clip_plane": plane[:, 0].clone(),
        "annotated": torch.ones(b, t, dtype=torch.bool),
    }


@pytest.mark.slow
def test_ultramn_learns_a_moving_nerve_and_its_plane():
    """~30 s on one core: 150 AdamW steps on synthetic clips reach Dice > 0.7, plane acc > 0.9."""
    import numpy as np

    from napari_ultramn.model.losses import MultitaskLoss
    from napari_ultramn.model.train import build_optimizer

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = build_model("ultramn", 3)
    opt = build_optimizer(model.parameters(), lr=3e-3, weight_decay=1e-2)
    loss_fn = MultitaskLoss()
    for _ in range(150):
        batch = _moving_nerve_batch(rng)
        loss, _ = loss_fn(model(batch["frames"]), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    batch = _moving_nerve_batch(np.random.default_rng(1), b=16)
    with torch.no_grad():
        out = model(batch["frames"])
    pred, truth = out["seg"] > 0, batch["masks"] > 0.5
    dice = 2 * (pred & truth).sum() / (pred.sum() + truth.sum())
    assert dice > 0.7
    assert (out["plane_frame"].argmax(-1) == batch["plane"]).float().mean() > 0.9
    present = truth.flatten(3).any(-1)[:, 0]
    assert ((out["presence"] > 0) == present).float().mean() > 0.9
