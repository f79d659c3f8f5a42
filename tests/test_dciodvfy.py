"""DICOM conformance: what we write passes David Clunie's dciodvfy (Debian package dicom3tools).

dciodvfy checks a file against its IOD (modules, Type 1/2/2C attributes, enumerated values). Lines
starting with "Error" are failures; "Warning" lines (e.g. an empty Study ID, which the PS3.15 profile
asks for) are not.
"""

import shutil
import subprocess

import numpy as np
import pydicom
import pytest
from pydicom import uid

from dataset_tools import deid
from napari_ultramn.annotation.export import export_dicom_seg
from tests.dicom_factory import gray_frames, kept_copy, write_dicom, write_phantom_dicom

pytestmark = pytest.mark.skipif(
    shutil.which("dciodvfy") is None,
    reason="dciodvfy not on PATH (apt-get install dicom3tools; CI installs it)",
)


def _mask_frames(shape):
    masks = np.zeros(shape, bool)
    masks[:, shape[1] // 4 : shape[1] // 2, shape[2] // 3 : shape[2] // 2] = True
    masks[0] = False  # a frame without nerve is still written
    return masks


def _seg(source, out, crop_region=None, shape=None):
    ds = pydicom.dcmread(source, stop_before_pixels=True)
    n = int(ds.get("NumberOfFrames", 1))
    shape = shape or (int(ds.Rows), int(ds.Columns))
    return export_dicom_seg(_mask_frames((n, *shape)), source, out, crop_region=crop_region, rater="rater1")


def _phantom(tmp, compress):
    path = tmp / f"phantom_{compress}.dcm"
    write_phantom_dicom(path, compress=compress)
    return path


def _phantom_seg(tmp, compress):
    path = tmp / f"phantom_{compress}.dcm"
    region = write_phantom_dicom(path, compress=compress)
    return _seg(path, tmp / f"seg_phantom_{compress}.dcm", region.as_list(), (region.height, region.width))


def _cine(tmp, syntax):
    """The factory's multi-frame US cine with an ultrasound region, native or JPEG baseline."""
    path = tmp / f"cine_{syntax.name[:12].replace(' ', '_')}.dcm"
    photometric = "YBR_FULL_422" if syntax == uid.JPEGBaseline8Bit else "MONOCHROME2"
    write_dicom(path, gray_frames(4, 32, 48), photometric, syntax, region=(4, 6, 28, 42))
    return path


def _kept_header_only(tmp):
    src = _phantom(tmp, "jpeg")
    ds = pydicom.dcmread(src)
    deid.deidentify_dataset(ds, b"k" * 32, "P0123456789", -40)
    ds.save_as(tmp / "kept_header_only.dcm", enforce_file_format=True)
    return tmp / "kept_header_only.dcm"


BUILDERS = {
    "phantom": lambda tmp: _phantom(tmp, "none"),
    "phantom-jpeg": lambda tmp: _phantom(tmp, "jpeg"),
    "seg-of-phantom": lambda tmp: _phantom_seg(tmp, "none"),
    "seg-of-phantom-jpeg": lambda tmp: _phantom_seg(tmp, "jpeg"),
    "cine": lambda tmp: _cine(tmp, uid.ExplicitVRLittleEndian),
    "cine-jpeg": lambda tmp: _cine(tmp, uid.JPEGBaseline8Bit),
    "seg-of-cine": lambda tmp: _seg(_cine(tmp, uid.ExplicitVRLittleEndian), tmp / "seg_cine.dcm"),
    "seg-of-cine-jpeg": lambda tmp: _seg(_cine(tmp, uid.JPEGBaseline8Bit), tmp / "seg_cine_jpeg.dcm"),
    "kept-copy": lambda tmp: kept_copy(tmp, "none")[0],
    "kept-copy-of-jpeg": lambda tmp: kept_copy(tmp, "jpeg")[0],
    "kept-copy-header-only": _kept_header_only,
    "seg-of-kept-copy": lambda tmp: _seg(kept_copy(tmp, "jpeg")[0], tmp / "seg_kept.dcm"),
}


def dciodvfy(path) -> tuple[list[str], list[str]]:
    """(errors, warnings) dciodvfy reports for ``path``."""
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    lines = (run.stdout + run.stderr).splitlines()
    return [x for x in lines if x.startswith("Error")], [x for x in lines if x.startswith("Warning")]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_dciodvfy_finds_no_errors(tmp_path, name):
    path = BUILDERS[name](tmp_path)
    errors, warnings = dciodvfy(path)
    assert not errors, f"{name}: dciodvfy errors:\n" + "\n".join(errors + warnings)


def test_dciodvfy_does_report_a_missing_type2_attribute(tmp_path):
    """The check above can fail: a phantom without Patient Orientation is an error."""
    path = _phantom(tmp_path, "none")
    ds = pydicom.dcmread(path)
    del ds.PatientOrientation
    ds.save_as(tmp_path / "bad.dcm", enforce_file_format=True)
    errors, _ = dciodvfy(tmp_path / "bad.dcm")
    assert any("PatientOrientation" in e for e in errors), errors
