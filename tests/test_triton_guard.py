"""Training after an OpenGL context: Triton must never load after Mesa's LLVM (segfault).

The end-to-end check runs in a child process, so a crash fails one test instead of killing the
session. It needs what produces the crash: a display and Triton (CUDA builds of torch ship it).
"""

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from napari_ultramn.model.triton_guard import foreign_llvm_loaded, keep_triton_out_after_gl

REPO = Path(__file__).resolve().parents[1]


def _maps(tmp_path, *libs):
    path = tmp_path / "maps"
    path.write_text("".join(f"7f00-7f01 r-xp 00000000 08:01 1 {lib}\n" for lib in libs))
    return path


def test_foreign_llvm_is_recognised_from_the_memory_map(tmp_path):
    assert foreign_llvm_loaded(_maps(tmp_path, "/usr/lib/x86_64-linux-gnu/libLLVM-15.so.1"))
    assert not foreign_llvm_loaded(_maps(tmp_path, "/usr/lib/libGL.so.1", "/opt/libtriton.so"))
    assert not foreign_llvm_loaded(tmp_path / "no-such-maps")


def test_triton_is_blocked_only_when_llvm_is_mapped_and_triton_not_loaded(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "triton", raising=False)
    assert not keep_triton_out_after_gl(_maps(tmp_path, "/usr/lib/libGL.so.1"))
    assert "triton" not in sys.modules
    assert keep_triton_out_after_gl(_maps(tmp_path, "/usr/lib/libLLVM.so.19.1"))
    assert sys.modules["triton"] is None
    with pytest.raises(ImportError):
        import triton  # noqa: F401
    monkeypatch.setitem(sys.modules, "triton", object())  # already loaded: leave it alone
    assert not keep_triton_out_after_gl(_maps(tmp_path, "/usr/lib/libLLVM.so.19.1"))


_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from qtpy.QtWidgets import QApplication
    app = QApplication([])
    import napari
    viewer = napari.Viewer(show=True)
    viewer.add_image(np.zeros((8, 8), np.uint8))
    app.processEvents()
    import torch
    from napari_ultramn.model.triton_guard import foreign_llvm_loaded
    model = torch.nn.Linear(4, 2)
    if sys.argv[1] == "guarded":
        from napari_ultramn.model.train import build_optimizer
        opt = build_optimizer(model.parameters(), lr=1e-3, weight_decay=0.0)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.ones(3, 4)).sum().backward()
    opt.step()
    print("llvm", foreign_llvm_loaded(), "triton", sys.modules.get("triton") is not None, flush=True)
    viewer.close()
""")


def _train_after_gl(mode):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", _CHILD, mode], cwd=REPO, env=env, capture_output=True, text=True, timeout=240
    )


@pytest.mark.gui
@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (run under xvfb-run)")
@pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="torch without Triton (a CPU build) cannot hit this crash"
)
def test_training_after_an_opengl_context_does_not_crash():
    guarded = _train_after_gl("guarded")
    assert guarded.returncode == 0, f"training after OpenGL crashed (rc {guarded.returncode}): {guarded.stderr[-2000:]}"
    if "llvm True" in guarded.stdout:
        # the driver is LLVM-based, so the guard must have kept Triton out
        assert "triton False" in guarded.stdout
        # and the unguarded optimizer still crashes here, so this test can tell the two apart
        assert _train_after_gl("unguarded").returncode != 0
