"""napari sample data: four phantom clips with ground truth, fast and torch-free."""

import subprocess
import sys

import numpy as np
import pytest

from napari_ultramn import DEFAULT_PLANES, _sample_data


@pytest.mark.parametrize("plane", DEFAULT_PLANES)
def test_sample_returns_image_and_ground_truth_labels(plane):
    (frames, img_kw, img_type), (mask, lab_kw, lab_type) = getattr(_sample_data, plane)()
    assert (img_type, lab_type) == ("image", "labels")
    assert frames.dtype == np.uint8 and frames.ndim == 3 and frames.shape == mask.shape
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    assert img_kw["name"].startswith("phantom") and lab_kw["name"] == "nerve (ground truth)"
    assert img_kw["scale"] == lab_kw["scale"] and img_kw["scale"][0] == 1.0
    assert 0.05 < img_kw["scale"][1] < 0.5
    meta = img_kw["metadata"]
    assert meta["plane"] == plane and len(meta["plane_labels"]) == len(meta["quality"]) == len(frames)


def test_every_manifest_sample_points_at_a_function_here():
    from pathlib import Path

    import yaml

    manifest = yaml.safe_load((Path(_sample_data.__file__).parent / "napari.yaml").read_text())
    commands = {c["id"]: c["python_name"] for c in manifest["contributions"]["commands"]}
    for sample in manifest["contributions"]["sample_data"]:
        module, func = commands[sample["command"]].split(":")
        assert module == "napari_ultramn._sample_data" and callable(getattr(_sample_data, func))


def test_sample_data_never_imports_torch():
    code = (
        "import sys; from napari_ultramn import _sample_data; _sample_data.transverse_wrist(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.gui
def test_napari_opens_the_sample_with_mm_scale(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-ultramn", "longitudinal_forearm")
    image, labels = viewer.layers
    assert image.data.shape == labels.data.shape and image.data.ndim == 3
    assert labels.name == "nerve (ground truth)" and 0.05 < image.scale[1] < 0.5
    assert image.metadata["plane"] == "longitudinal_forearm"
