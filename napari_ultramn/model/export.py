"""Export a trained model for deployment beside a scanner: TorchScript and ONNX.

Both exports take the full-window forward ``(B, 1, T, H, W) -> seg, presence, plane_frame,
plane_clip`` with BatchNorm folded into the convolutions (eval mode), and both are *verified*
before they are written: the exported program runs on an input of a different batch size, window
length and frame size than the one it was traced with, and must agree with the eager model. The
file appears only complete (atomic write), so a scanner-side watcher never loads half a model.

Batch, time, height and width are dynamic in both (H and W must stay divisible by
``2**depth``). The model's config (and the plane vocabulary, if given) travels inside the file:
``config.json`` in the TorchScript archive, ``metadata_props`` in the ONNX model.

:func:`export_onnx_stream` exports the live one-frame step instead, with the causal state as
explicit inputs and outputs, so a scanner-side ONNX runtime streams at one frame's cost.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from napari_ultramn.atomic import atomic_write_bytes
from napari_ultramn.model.blocks import CausalConv, fold_batchnorm
from napari_ultramn.model.frames_model import FramesModel

OUTPUT_NAMES = ("seg", "presence", "plane_frame", "plane_clip")
#: tolerance of the exported-vs-eager check (float32; folding and kernels reorder sums)
ATOL = 1e-4


class _TupleOutputs(nn.Module):
    """ONNX wants positional outputs: the model's dict as a tuple in ``OUTPUT_NAMES`` order."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(x)
        return tuple(out[name] for name in OUTPUT_NAMES)


def _prepare(
    model: FramesModel, window: int, size: Sequence[int] | None
) -> tuple[FramesModel, torch.Tensor, torch.Tensor]:
    """Eval-mode, BN-folded CPU copy; a trace input and a differently shaped check input."""
    if not hasattr(model, "config") or not hasattr(model, "check_input"):
        raise TypeError(f"export needs a model from build_model(); got {type(model).__name__}")
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an int >= 1; got {window!r}")
    m = 2**model.depth
    h, w = (4 * m, 4 * m) if size is None else (int(size[0]), int(size[1]))
    if h <= 0 or w <= 0 or h % m or w % m:
        raise ValueError(f"size must be positive and divisible by 2**depth = {m}; got {h}x{w}")
    export_model = fold_batchnorm(copy.deepcopy(model).cpu().float().eval())
    gen = torch.Generator().manual_seed(0)
    example = torch.rand(1, model.in_channels, window, h, w, generator=gen)
    check = torch.rand(2, model.in_channels, window + 2, h + m, w + 2 * m, generator=gen)
    return export_model, example, check


def _metadata(model: FramesModel, plane_labels: Sequence[str] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "config": model.config,
        "outputs": list(OUTPUT_NAMES),
        "input": "(B, C, T, H, W) float in [0, 1]",
    }
    if plane_labels is not None:
        if len(plane_labels) != model.config["n_planes"]:
            raise ValueError(
                f"plane_labels has {len(plane_labels)} names but the model has n_planes={model.config['n_planes']}"
            )
        meta["plane_labels"] = list(plane_labels)
    return meta


def _check_agreement(what: str, got: Sequence[Any], want: dict[str, torch.Tensor]) -> None:
    for name, value in zip(OUTPUT_NAMES, got):
        ref = want[name].numpy()
        value = np.asarray(value)
        if value.shape != ref.shape or not np.allclose(value, ref, atol=ATOL, rtol=1e-3):
            diff = np.abs(value - ref).max() if value.shape == ref.shape else "shape"
            raise RuntimeError(
                f"{what} output {name!r} disagrees with the eager model (max difference {diff}); not written"
            )


def export_torchscript(
    model: FramesModel,
    path: str | Path,
    window: int = 4,
    size: Sequence[int] | None = None,
    plane_labels: Sequence[str] | None = None,
) -> Path:
    """Trace ``model`` to TorchScript at ``path`` (atomic); ``torch.jit.load`` returns a module
    whose forward gives the same dict of logits. Returns the path."""
    path = Path(path)
    export_model, example, check = _prepare(model, window, size)
    meta = _metadata(model, plane_labels)
    with torch.no_grad(), warnings.catch_warnings():
        # TracerWarnings (shape checks skipped while tracing) and torch.jit's deprecation notice
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(export_model, example, strict=False)
        want = export_model(check)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={"config.json": json.dumps(meta)})
        buffer.seek(0)
        loaded = torch.jit.load(buffer)
        got = loaded(check)
    _check_agreement("TorchScript", [got[name] for name in OUTPUT_NAMES], want)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _checked_onnx(buffer, meta: dict[str, Any]) -> tuple[bytes, Any]:
    """The exported graph with our metadata, passed by onnx's checker, and onnxruntime if installed.

    Callers compare the graph's outputs with the eager model through onnxruntime before writing;
    without the deployment extra (``export``) that comparison is skipped, the checker still runs.
    """
    import onnx

    proto = onnx.load_from_string(buffer.getvalue())
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.checker.check_model(proto)
    try:
        import onnxruntime
    except ImportError:
        onnxruntime = None
    return proto.SerializeToString(), onnxruntime


def export_onnx(
    model: FramesModel,
    path: str | Path,
    window: int = 4,
    size: Sequence[int] | None = None,
    opset: int = 17,
    plane_labels: Sequence[str] | None = None,
) -> Path:
    """Export ``model`` to ONNX at ``path`` (atomic) with dynamic batch, time, height, width.

    Input ``frames (B, C, T, H, W)``; outputs ``seg, presence, plane_frame, plane_clip``
    (logits). Verified with onnxruntime when it is installed. Returns the path.
    """

    path = Path(path)
    export_model, example, check = _prepare(model, window, size)
    meta = _metadata(model, plane_labels)
    axes = {
        "frames": {0: "batch", 2: "time", 3: "height", 4: "width"},
        "seg": {0: "batch", 2: "time", 3: "height", 4: "width"},
        "presence": {0: "batch", 1: "time"},
        "plane_frame": {0: "batch", 1: "time"},
        "plane_clip": {0: "batch"},
    }
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # the legacy (TorchScript-based) exporter: the torch.export one needs onnxscript
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _TupleOutputs(export_model),
            (example,),
            buffer,  # type: ignore[arg-type]  # a file object works
            dynamo=False,
            input_names=["frames"],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=axes,
            opset_version=opset,
        )
        want = export_model(check)
    data, onnxruntime = _checked_onnx(buffer, meta)
    if onnxruntime is not None:
        session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
        _check_agreement("ONNX", session.run(list(OUTPUT_NAMES), {"frames": check.numpy()}), want)
    atomic_write_bytes(path, data)
    return path


class _StreamStep(nn.Module):
    """One stream step with explicit state, for ONNX: ``(frame, feature_sum, count, *states)
    -> (mask_prob, presence, plane_probs, clip_plane_probs, feature_sum, count, *states)``."""

    def __init__(self, model: FramesModel):
        super().__init__()
        self.model = model
        self.convs = [m for m in model.modules() if isinstance(m, CausalConv) and m.temporal_kernel > 1]

    def forward(
        self, frame: torch.Tensor, feature_sum: torch.Tensor, count: torch.Tensor, *states: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        cache = {id(conv): state for conv, state in zip(self.convs, states)}
        seg, features = self.model.forward_frames(frame, 1, cache)
        presence, plane_frame = self.model.heads.per_frame(features)
        feature_sum = feature_sum + features
        count = count + 1.0
        clip = self.model.heads.clip(feature_sum / count)
        return (
            torch.sigmoid(seg[0, 0]),
            torch.sigmoid(presence),
            torch.softmax(plane_frame[0], -1),
            torch.softmax(clip[0], -1),
            feature_sum,
            count,
            *(cache[id(conv)] for conv in self.convs),
        )


def export_onnx_stream(
    model: FramesModel,
    path: str | Path,
    size: Sequence[int],
    opset: int = 17,
    plane_labels: Sequence[str] | None = None,
) -> Path:
    """Export the one-frame stream step to ONNX at ``path`` (atomic), for a fixed frame size.

    Inputs: ``frame (1, C, H, W)`` float in [0, 1], ``feature_sum (1, D)``, ``count (1,)`` and
    ``state_0 ... state_n`` (the cached past of each causal temporal conv), all zeros at the start
    of a clip; outputs ``mask_prob (H, W)``, ``presence (1,)``, ``plane_probs (P,)``,
    ``clip_plane_probs (P,)`` and the next ``feature_sum``, ``count`` and ``state_i``
    (``*_out``), to feed back with the next frame. Shapes of every input are in the metadata
    (``inputs``). Verified against :class:`StreamingUltraMN` over several frames.
    """

    from napari_ultramn.model.stream import StreamingUltraMN

    path = Path(path)
    export_model, _, _ = _prepare(model, 1, size)
    meta = _metadata(model, plane_labels)
    h, w = int(size[0]), int(size[1])
    step = _StreamStep(export_model)
    gen = torch.Generator().manual_seed(0)
    frames = torch.rand(4, 1, model.in_channels, h, w, generator=gen)
    # state shapes: run one eager step and read the cache
    cache: dict = {}
    with torch.no_grad():
        _, features = export_model.forward_frames(frames[0], 1, cache)
    states = [torch.zeros_like(cache[id(conv)]) for conv in step.convs]
    inputs = (frames[0], torch.zeros_like(features), torch.zeros(1), *states)
    in_names = ["frame", "feature_sum", "count"] + [f"state_{i}" for i in range(len(states))]
    out_names = ["mask_prob", "presence", "plane_probs", "clip_plane_probs"] + [f"{name}_out" for name in in_names[1:]]
    meta["inputs"] = {name: list(t.shape) for name, t in zip(in_names, inputs)}
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            step,
            inputs,
            buffer,  # type: ignore[arg-type]  # a file object works
            dynamo=False,
            input_names=in_names,
            output_names=out_names,
            opset_version=opset,
        )
    data, onnxruntime = _checked_onnx(buffer, meta)
    if onnxruntime is not None:
        session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
        stream = StreamingUltraMN(export_model, device="cpu")
        feed = {name: t.numpy() for name, t in zip(in_names, inputs)}
        for frame in frames:
            want = stream.step(frame[0] if model.in_channels == 1 else frame)
            got = session.run(out_names, {**feed, "frame": frame.numpy()})
            for name, value in zip(("mask_prob", "presence", "plane_probs", "clip_plane_probs"), got):
                if not np.allclose(np.ravel(value), np.ravel(np.asarray(want[name])), atol=ATOL):
                    raise RuntimeError(f"ONNX stream output {name!r} disagrees with StreamingUltraMN; not written")
            feed.update(dict(zip(in_names[1:], got[4:])))
    atomic_write_bytes(path, data)
    return path


def load_torchscript_metadata(path: str | Path) -> dict[str, Any]:
    """The config / plane vocabulary stored by :func:`export_torchscript`."""
    files = {"config.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.load(str(path), _extra_files=files)
    return json.loads(files["config.json"])
