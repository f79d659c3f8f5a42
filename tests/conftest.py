"""Shared fixtures. GUI tests use napari's ``make_napari_viewer`` and pytest-qt's ``qtbot``."""

import os

import numpy as np
import pytest

# Workers run synchronously in tests so GUI tests are deterministic (see napari_ultramn/_widgets).
os.environ.setdefault("ULTRAMN_SYNC_WORKERS", "1")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
