"""``ultramn export-model RUN_DIR --format torchscript|onnx|onnx-stream --out PATH``: deployable model + check.

``onnx-stream`` exports the one-frame step with its temporal state as explicit inputs and outputs,
for live inference beside a scanner (one frame's work per frame, no window of latency).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export-model",
        help="export a trained model to TorchScript or ONNX and check it against the eager model",
        description="Exports best.pt of RUN_DIR, runs the exported and the eager model on the same "
        "random window and prints the largest absolute difference per output (non-zero exit if it "
        "exceeds --tolerance).",
    )
    p.add_argument("run_dir", help="run folder (uses best.pt) or a checkpoint file")
    p.add_argument(
        "--format",
        required=True,
        choices=("torchscript", "onnx", "onnx-stream"),
        help="onnx-stream: the one-frame streaming step with explicit state (live use)",
    )
    p.add_argument("--out", required=True, help="output file (.pt / .onnx)")
    p.add_argument("--window", type=int, default=None, help="frames per window (default: the training window)")
    p.add_argument("--tolerance", type=float, default=1e-3, help="largest accepted |exported - eager| of any logit")
    p.set_defaults(func=run)


def missing_export_packages(fmt: str) -> list[str]:
    """The packages an ONNX format needs that are not installed (TorchScript needs none)."""
    import importlib.util

    needed = ("onnx", "onnxruntime") if fmt.startswith("onnx") else ()
    return [name for name in needed if importlib.util.find_spec(name) is None]


def run(args) -> int:
    import warnings

    from napari_ultramn.errors import UltramnError

    if missing := missing_export_packages(args.format):
        raise UltramnError(
            f"--format {args.format} needs {' and '.join(missing)}, which the 'export' extra "
            "installs: pip install 'napari-ultramn[export]'"
        )
    import numpy as np
    import torch

    from napari_ultramn.model import export
    from napari_ultramn.model.checkpoint import model_from_checkpoint

    model, ckpt = model_from_checkpoint(args.run_dir)
    window = args.window or int(ckpt["window"])
    h, w = (int(s) for s in ckpt["input_size"])
    if args.format == "onnx-stream":
        # export_onnx_stream itself runs the file against StreamingUltraMN over several frames
        # and raises (nothing written) if any output disagrees.
        try:
            export.export_onnx_stream(model, args.out, size=(h, w), plane_labels=ckpt["plane_labels"])
        except RuntimeError as exc:
            print(f"export failed its check: {exc}")
            return 1
        print(f"exported onnx-stream to {args.out} ({h}x{w}); matches StreamingUltraMN frame by frame")
        return 0
    if args.format == "torchscript":
        export.export_torchscript(model, args.out, window=window, size=(h, w), plane_labels=ckpt["plane_labels"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load's deprecation notice
            exported = torch.jit.load(args.out)

        def run_exported(x):
            with torch.inference_mode():
                return {k: v.numpy() for k, v in exported(torch.from_numpy(x)).items()}
    else:
        export.export_onnx(model, args.out, window=window, size=(h, w), plane_labels=ckpt["plane_labels"])
        import onnxruntime as ort

        session = ort.InferenceSession(args.out, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]

        def run_exported(x):
            return dict(zip(names, session.run(None, {session.get_inputs()[0].name: x})))

    x = np.random.default_rng(0).random((1, 1, window, h, w), dtype=np.float32)
    with torch.inference_mode():
        eager = {k: v.numpy() for k, v in model(torch.from_numpy(x)).items()}
    got = run_exported(x)
    worst = 0.0
    for key, ref in eager.items():
        if key not in got:
            print(f"{key}: missing from the exported model's outputs")
            worst = float("inf")
            continue
        diff = float(np.max(np.abs(np.asarray(got[key]) - ref)))
        worst = max(worst, diff)
        print(f"{key}: max abs diff {diff:.2e}")
    print(f"exported {args.format} to {args.out} (window {window}, {h}x{w}); max abs diff {worst:.2e}")
    return 0 if worst <= args.tolerance else 1
