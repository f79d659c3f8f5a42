"""Keyboard bindings of the annotator: one table, checked against napari's own keys at bind time.

napari's layer keys are tool switches, several of them "hold" actions: pressing P (paint) or
Z (pan) records a restore callback under the *bare* key, and the next release of that key, with
any modifier, fires it. A plugin key on Shift-P or Ctrl-Z therefore silently switched the tool
back (paint became fill). So the plugin binds nothing in napari's keymaps: a Qt event filter on
the canvas takes the plugin's key presses *and* their releases before napari sees either, and
the table is refused at bind time when one of its keys is also a napari binding of the viewer,
the Image, Labels, Shapes or Points layers, a menu shortcut or a menu mnemonic (Alt-P opens the
Plugins menu). A key may take over a napari binding only by naming it in ``replaces`` (undo and
redo: napari's Labels undo would bypass the annotation history).
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass

from qtpy.QtCore import QEvent, QObject


@dataclass(frozen=True)
class Binding:
    key: str  # napari's spelling, e.g. "Shift-K"
    action: str  # method of the widget
    text: str  # what the radiologist reads
    replaces: tuple[str, ...] = ()  # napari bindings deliberately taken over ("Labels Ctrl+Z")


#: Plane keys: F1..F9 for the standard planes (napari's digits 1-7 switch tools).
PLANE_KEYS = tuple(f"F{i}" for i in range(1, 10))

KEYS = (
    Binding("0", "key_non_standard", "non-standard: first, then last frame"),
    Binding("K", "key_next_keyframe", "next keyframe"),
    Binding("Shift-K", "key_previous_keyframe", "previous keyframe"),
    Binding("N", "key_next_clip", "next clip to label"),
    Binding("Shift-N", "key_previous_clip", "previous clip to label"),
    Binding("Shift-I", "key_interpolate", "interpolate keyframes"),
    Binding("Control-Right", "key_propagate_forward", "propagate forward"),
    Binding("Control-Left", "key_propagate_backward", "propagate backward"),
    Binding("Alt-A", "key_accept", "accept propagation up to here"),
    Binding("Shift-F", "key_flag", "flag ok/poor/unusable"),
    Binding("Shift-D", "key_done", "mark clip done"),
    Binding("Control-Z", "undo", "undo (any frame)", ("Labels Ctrl+Z",)),
    Binding("Control-Shift-Z", "redo", "redo", ("Labels Ctrl+Shift+Z",)),
    # -- View section (annotator_display.py): window/level, nerve display, cine, caliper --------
    Binding("Shift-W", "key_next_preset", "next window/level preset"),
    Binding("Shift-R", "key_reset_window", "reset window/level (full range)"),
    Binding("Shift-O", "key_nerve_outline", "nerve outline only / filled"),
    Binding("Shift-C", "key_cine", "cine play / pause"),
    Binding("Shift-M", "key_caliper", "caliper (measure a line) on / off"),
)

# -- smart keyframe (issue 14, annotator_assist) ----------------------------------------------
#: The mode's toggle is an ordinary plugin key (clash-checked like the rest). Its click,
#: Shift-click, Enter and Escape belong to the mode only while it is on (annotator_assist takes
#: them on the canvas then), so they are listed, never bound here: outside the mode Enter and
#: Escape stay napari's.
ASSIST_KEYS = (Binding("Shift-S", "key_smart_keyframe", "smart keyframe mode on/off"),)
ASSIST_MODE_KEYS = (
    ("click / Shift-click", "smart keyframe: point inside / outside the nerve"),
    ("Enter / Escape", "smart keyframe: accept as 'assisted' / drop"),
)

# -- issue 14: checking doubtful frames (actions in annotator_doubt.py) ----------------------------
DOUBT_KEYS = (Binding("J", "key_next_doubt", "check the next doubtful frame"),)

#: napari's own keys the radiologist needs, listed (never bound) by the plugin.
NAPARI_KEYS = (
    ("Left / Right", "previous / next frame (napari)"),
    ("P / E / F", "paint / erase / fill (napari)"),
    ("[ / ]", "brush smaller / larger (napari)"),
    ("Space (hold)", "pan and zoom (napari)"),
    ("right-drag", "window (left-right) / level (up-down) in pan-zoom or holding Space"),
)

#: Layer types whose napari keys the plugin must not shadow.
LAYER_TYPES = ("Image", "Labels", "Shapes", "Points")
_MNEMONICS = "FVLPDWH"  # napari's menu bar: &File &View &Layers &Plugins &Debug &Window &Help


class KeyClash(ValueError):
    """A plugin key that is also one of napari's bindings."""


def plane_bindings(plane_labels: list[str]) -> list[Binding]:
    """F1..F9 for the standard planes (the last label, non-standard, is the range key 0)."""
    return [Binding(k, "key_plane", f"plane {p}") for k, p in zip(PLANE_KEYS, plane_labels[:-1])]


def bindings(plane_labels: list[str]) -> list[tuple[Binding, tuple]]:
    """Every plugin binding with the arguments its action is called with."""
    planes = [(b, (p,)) for b, p in zip(plane_bindings(plane_labels), plane_labels)]
    return planes + [(b, ()) for b in (*KEYS, *ASSIST_KEYS, *DOUBT_KEYS)]


def help_rows(plane_labels: list[str]) -> list[tuple[str, str]]:
    return [(b.key, b.text) for b, _args in bindings(plane_labels)] + list(ASSIST_MODE_KEYS) + list(NAPARI_KEYS)


def help_text(plane_labels: list[str]) -> str:
    """Plain text, one binding a line (tests and tooltips)."""
    return "\n".join(f"{k}  {text}" for k, text in help_rows(plane_labels))


def help_html(plane_labels: list[str]) -> str:
    """A compact two-column table for the widget."""
    cells = [f"<td><b>{k}</b></td><td>{text}</td>" for k, text in help_rows(plane_labels)]
    return "<table cellspacing=2>" + "".join(f"<tr>{c}</tr>" for c in cells) + "</table>"


# -- napari's bindings ---------------------------------------------------------------------------
def _kb(key):
    from napari.utils.key_bindings import coerce_keybinding

    return coerce_keybinding(key)


def napari_bindings(viewer) -> dict:
    """``{KeyBinding: [who binds it]}`` for the viewer, the layer types, the menus and mnemonics."""
    import napari.layers

    try:
        from napari._app_model import get_app_model
    except ImportError:  # napari 0.5.0/0.5.1 name the same registry get_app
        from napari._app_model import get_app as get_app_model
    from napari.utils.action_manager import action_manager
    from napari.utils.key_bindings import _get_user_keymap

    names = {id(a.injected): n for n, a in action_manager._actions.items()}
    out: dict = {}

    def add(kb, who):
        out.setdefault(_kb(kb), []).append(who)

    owners = [("Viewer", type(viewer)), *((t, getattr(napari.layers, t)) for t in LAYER_TYPES)]
    for owner, cls in owners:
        for c in cls.__mro__:
            for kb, func in getattr(c, "class_keymap", {}).items():
                add(kb, f"{owner} {_kb(kb)} ({names.get(id(func), getattr(func, '__name__', func))})")
    for kb, func in {**viewer.keymap, **_get_user_keymap()}.items():
        add(kb, f"Viewer {_kb(kb)} ({getattr(func, '__name__', func)})")
    for rule in get_app_model().keybindings:
        add(rule.keybinding, f"menu {rule.keybinding} ({rule.command_id})")
    for letter in _MNEMONICS:
        add(f"Alt-{letter}", f"menu bar Alt+{letter}")
    return out


def check(plane_labels: list[str], viewer) -> None:
    """Raise :class:`KeyClash` naming both bindings if a plugin key is also napari's."""
    theirs = napari_bindings(viewer)
    seen: dict = {}
    for b, _args in bindings(plane_labels):
        kb = _kb(b.key)
        if kb in seen:
            raise KeyClash(f"plugin key {b.key} ({b.text}) is bound twice (also {seen[kb]})")
        seen[kb] = b.text
        for who in theirs.get(kb, []):
            if not any(who.startswith(r) for r in b.replaces):
                raise KeyClash(f"plugin key {b.key} ({b.text}) clashes with napari's {who}")


# -- the event filter -----------------------------------------------------------------------------
def _event_keybinding(ev):
    from app_model.backends.qt import qkey2modelkey, qmods2modelmods
    from app_model.types import KeyBinding

    try:
        return KeyBinding.from_int(int(qmods2modelmods(ev.modifiers())) | int(qkey2modelkey(ev.key())))
    except (KeyError, ValueError, TypeError):
        return None  # a key app-model has no name for (a bare modifier, a media key)


class KeyFilter(QObject):
    """Takes the plugin's keys on napari's canvas before napari's keymaps can see them."""

    def __init__(self, widget, viewer):
        super().__init__()
        check(widget.plane_labels, viewer)
        self._table = {_kb(b.key): (b.action, args) for b, args in bindings(widget.plane_labels)}
        self._widget = widget
        self._swallowed: set[int] = set()  # keys whose press we took: their release is ours too
        with warnings.catch_warnings():  # napari offers no public handle on its canvas widget
            warnings.simplefilter("ignore", FutureWarning)
            qt_viewer = viewer.window._qt_viewer
        targets = (qt_viewer.canvas.native, qt_viewer)
        for t in targets:
            t.installEventFilter(self)
        self._targets = [weakref.ref(t) for t in targets]  # never keep napari's viewer alive

    def remove(self) -> None:
        for ref in self._targets:
            t = ref()
            try:
                if t is not None:
                    t.removeEventFilter(self)
            except RuntimeError:  # the viewer went first
                pass
        self._targets = []

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 (Qt's name)
        kind = ev.type()
        if kind == QEvent.Type.KeyRelease:
            if ev.key() in self._swallowed:
                if not ev.isAutoRepeat():
                    self._swallowed.discard(ev.key())
                return True  # napari never sees it, so no stale "hold" restore fires
            return False
        if kind not in (QEvent.Type.KeyPress, QEvent.Type.ShortcutOverride):
            return False
        if kind == QEvent.Type.ShortcutOverride:
            if _event_keybinding(ev) not in self._table:
                return False
            ev.accept()  # ask Qt for the key press instead of a menu shortcut
            return True
        return self.press(ev)

    def press(self, ev) -> bool:
        """Run the plugin action of key press ``ev``; False if the key is not the plugin's."""
        entry = self._table.get(_event_keybinding(ev))
        if entry is None:
            return False
        ev.accept()
        self._swallowed.add(ev.key())
        if not ev.isAutoRepeat():
            action, args = entry
            getattr(self._widget, action)(*args)
        return True


class DockKeys:
    """Keys pressed while the dock has the focus (a button, a list, a text field).

    napari's dock passes every key event its widget leaves unhandled to the viewer, releases
    included. A release whose press a text field took (typing 'p' in the comment) then fired
    napari's stale "hold P" restore and switched the brush back to pan/zoom. So only the release
    of a press that went on to napari goes on too; plugin keys act here as on the canvas.
    """

    def __init__(self):
        self._passed_on: set[int] = set()

    def press(self, key_filter: KeyFilter, ev) -> bool:
        """True if handled here; False: let it go on to napari (and remember its release goes too)."""
        if key_filter.press(ev):
            return True
        self._passed_on.add(ev.key())
        return False

    def release(self, ev) -> bool:
        """True if napari must not see this release."""
        if ev.key() not in self._passed_on:
            ev.accept()
            return True
        if not ev.isAutoRepeat():
            self._passed_on.discard(ev.key())
        return False
