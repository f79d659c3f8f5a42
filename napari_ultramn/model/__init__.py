"""The UltraMN multitask video model: network, losses, streaming inference, export, training.

Importing this package is light (no torch): torch is imported by the submodules that need it,
which only training, evaluation and inference import.

- ``network``: :class:`~napari_ultramn.model.network.UltraMNet` (causal (2+1)D video U-Net with
  segmentation, presence and plane heads), ``build_model`` and ``model_from_config``.
- ``baselines``: :class:`~napari_ultramn.model.baselines.UNet2D` (per-frame 2D U-Net).
- ``losses``: :class:`~napari_ultramn.model.losses.MultitaskLoss` (empty-mask-aware).
- ``stream``: :class:`~napari_ultramn.model.stream.StreamingUltraMN` (one frame in, one out).
- ``export``: TorchScript and ONNX export (window model, and the ONNX stream step) with atomic,
  verified writes.
"""

from napari_ultramn.vocabulary import MODEL_NAMES  # noqa: F401 (names build_model accepts)
