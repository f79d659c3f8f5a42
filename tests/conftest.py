"""Shared fixtures. GUI tests use napari's ``make_napari_viewer`` and pytest-qt's ``qtbot``."""

import os

import numpy as np
import pytest

# Workers run synchronously in tests so GUI tests are deterministic (see napari_ultramn/_widgets).
os.environ.setdefault("ULTRAMN_SYNC_WORKERS", "1")
# Per-clip work runs in this process unless a test asks for a pool (workers=2): monkeypatches
# reach it and no test pays a process pool's start-up (napari_ultramn/parallel.py).
os.environ.setdefault("ULTRAMN_WORKERS", "1")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """``(dataset, run)``: one tiny dataset and 2-epoch training run per test session, shared by the
    evaluation, pre-annotation and Training-widget tests (training is the expensive part)."""
    from tests.model_factory import train_tiny, write_tiny_dataset

    root = tmp_path_factory.mktemp("shared")
    dataset = write_tiny_dataset(root / "ds")
    train_tiny(dataset, root / "runs" / "tiny", epochs=2)
    return dataset, root / "runs" / "tiny"
