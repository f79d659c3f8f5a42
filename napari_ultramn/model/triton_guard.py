"""Keep Triton out of a process that already draws with Mesa's LLVM-based OpenGL.

Why: building any torch optimizer imports ``torch._dynamo``, which imports Triton when it is
installed (CUDA builds of torch ship it). ``libtriton.so`` carries its own copy of LLVM and exports
LLVM's symbols. When Mesa's software or AMD OpenGL driver (llvmpipe, radeonsi) has already loaded
``libLLVM`` into the process, the dynamic linker binds Triton's static initialisers to *that*
LLVM's globals (symbol interposition), and the process dies with a segfault inside
``llvm::DebugCounter`` while Triton loads. The opposite order is safe: Mesa's references to LLVM
are versioned and keep binding to its own copy.

This happens in any process that creates an OpenGL context (a napari viewer) and then trains
in-process: a notebook, the test suite. Our CPU and CUDA training never needs Triton (it runs eager
kernels, no ``torch.compile``), so where a foreign LLVM is already mapped and Triton is not yet
loaded, we make ``import triton`` fail the way it does on a CPU build, and torch carries on without
it. Where Triton is already loaded, or no LLVM is mapped, nothing changes.
"""

from __future__ import annotations

import sys
from pathlib import Path

MAPS = Path("/proc/self/maps")


def foreign_llvm_loaded(maps: Path = MAPS) -> bool:
    """Whether a shared ``libLLVM`` (an OpenGL driver's) is mapped into this process (Linux)."""
    try:
        text = maps.read_text()
    except OSError:  # not Linux: no /proc; Mesa's LLVM drivers are a Linux matter
        return False
    return any("/libLLVM" in line for line in text.splitlines())


def keep_triton_out_after_gl(maps: Path = MAPS) -> bool:
    """Block ``import triton`` if a foreign LLVM is mapped and Triton is not loaded yet.

    Call before the first torch optimizer is built. Returns whether Triton is (now) blocked.
    """
    if sys.modules.get("triton", ...) is None:
        return True  # already blocked
    if "triton" in sys.modules or not foreign_llvm_loaded(maps):
        return False
    sys.modules["triton"] = None  # type: ignore[assignment]  # Python's way of saying "this module is not importable"
    return True
