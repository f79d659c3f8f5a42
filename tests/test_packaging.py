"""Packaging: the manifest travels in wheel and editable installs, is valid, and names real objects."""

import importlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "napari.yaml"


def _python_names():
    manifest = yaml.safe_load(MANIFEST.read_text())
    return [c["python_name"] for c in manifest["contributions"]["commands"]]


def test_package_manifest_is_the_root_file():
    import napari_ultramn

    carried = Path(napari_ultramn.__file__).parent / "napari.yaml"
    assert carried.read_text() == MANIFEST.read_text()
    schemas = Path(napari_ultramn.__file__).parent / "schemas"
    assert sorted(p.name for p in schemas.glob("*.json")) == sorted(p.name for p in (ROOT / "schemas").glob("*.json"))


def test_npe2_validates_the_installed_manifest():
    from npe2 import PluginManager

    pm = PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-ultramn")
    assert manifest.name == "napari-ultramn"
    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-ultramn", "--imports"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("python_name", _python_names())
def test_every_manifest_python_name_imports(python_name):
    module, attr = python_name.split(":")
    assert callable(getattr(importlib.import_module(module), attr))


def test_every_cli_command_is_present():
    from napari_ultramn.cli import COMMAND_MODULES, available_commands

    assert available_commands() == list(COMMAND_MODULES)


def test_core_imports_neither_torch_nor_qt():
    code = (
        "import sys, napari_ultramn, napari_ultramn.io, napari_ultramn.project, napari_ultramn.annotation, "
        "napari_ultramn.phantom, napari_ultramn._sample_data, napari_ultramn.model, dataset_tools, "
        "dataset_tools.ingest, napari_ultramn.cli; napari_ultramn.cli.build_parser(); "
        "bad = [m for m in ('torch', 'napari', 'PyQt6', 'qtpy') if m in sys.modules]; print(bad); "
        "sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    (whl,) = out.glob("napari_ultramn-*.whl")
    return whl


def test_wheel_carries_manifest_schemas_and_entry_point(wheel, tmp_path):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert zf.read("napari_ultramn/napari.yaml") == MANIFEST.read_bytes()
        for schema in (ROOT / "schemas").glob("*.json"):
            assert f"napari_ultramn/schemas/{schema.name}" in names
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        text = zf.read(entry_points).decode()
        assert "napari-ultramn = napari_ultramn:napari.yaml" in text
        assert "ultramn = napari_ultramn.cli:main" in text
        zf.extractall(tmp_path / "site")
    # the manifest as installed from the wheel validates with npe2 on its own
    from npe2 import PluginManifest

    manifest = PluginManifest.from_file(tmp_path / "site" / "napari_ultramn" / "napari.yaml")
    assert manifest.name == "napari-ultramn"
    code = (
        "import napari_ultramn, pathlib, sys; p = pathlib.Path(napari_ultramn.__file__).parent; "
        "assert (p / 'napari.yaml').is_file() and (p / 'schemas' / 'annotation.schema.json').is_file(); "
        "print(p)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert str(tmp_path / "site") in result.stdout
