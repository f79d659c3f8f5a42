"""Can this machine open a napari window? Asked before napari is imported, so that a missing
display or Qt library is one line saying what to do, not Qt aborting the process with advice that
does not fit (Qt's "xcb-cursor0 is needed ... reinstall the application" on a server without a
display at all)."""

from __future__ import annotations

import ctypes.util
import importlib.util
import os
import sys

QT_BINDINGS = ("PyQt6", "PySide6", "PyQt5", "PySide2")
#: QT_QPA_PLATFORM values that draw without a display server
HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc", "eglfs", "linuxfb")


def gui_problem(environ=None, platform: str | None = None) -> str | None:
    """Why a napari window cannot open here, with what to do; None when it can."""
    env = os.environ if environ is None else environ
    platform = platform or sys.platform
    if not any(importlib.util.find_spec(name) for name in QT_BINDINGS):
        return "no Qt binding is installed, which napari needs to open a window: pip install 'napari-ultramn[gui]'"
    qpa = env.get("QT_QPA_PLATFORM", "").split(":")[0]
    if not platform.startswith("linux") or qpa in HEADLESS_PLATFORMS:
        return None
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        return (
            "no display to open the annotator on (DISPLAY is not set): run it in a desktop "
            "session or over 'ssh -X'; on a headless server the command-line tools work without "
            "one, and 'xvfb-run ultramn annotate ...' starts a virtual screen to try it"
        )
    if env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY") and ctypes.util.find_library("xcb-cursor") is None:
        return (
            "Qt needs the system library libxcb-cursor0 to open a window on X11: "
            "install it (Debian/Ubuntu: sudo apt install libxcb-cursor0)"
        )
    return None
