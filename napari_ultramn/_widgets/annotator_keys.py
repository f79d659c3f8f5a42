"""Keyboard bindings of the annotator, in one table so the widget can list them.

Keys avoid the Labels layer's own letters (P paint, F fill, E erase, L pick, Z pan, M new label,
X swap, B preserve) so painting shortcuts keep working; digits are rebound on the nerve layer
(its tool modes stay on their letters) because radiologists label planes with one finger.
"""

from __future__ import annotations

#: (key, action name on the widget, what the radiologist reads); digits 1-9 are added per project.
KEYS = (
    ("0", "key_non_standard", "non-standard: first, then last frame"),
    ("Left / Right", None, "previous / next frame"),
    ("K", "key_next_keyframe", "next keyframe"),
    ("Shift-K", "key_previous_keyframe", "previous keyframe"),
    ("N", "key_next_clip", "next clip to label"),
    ("Shift-N", "key_previous_clip", "previous clip to label"),
    ("I", "key_interpolate", "interpolate keyframes"),
    ("Shift-P", "key_propagate_forward", "propagate forward"),
    ("Alt-P", "key_propagate_backward", "propagate backward"),
    ("A", "key_accept", "accept up to here"),
    ("Shift-F", "key_flag", "flag ok/poor/unusable"),
    ("Shift-D", "key_done", "mark clip done"),
    ("Control-Z", "undo", "undo (any frame)"),
    ("Control-Shift-Z", "redo", "redo"),
)

#: Keys also bound on the nerve Labels layer, whose own keymap would otherwise win.
LAYER_KEYS = ("0", "Control-Z", "Control-Shift-Z", "K", "Shift-K", "N", "Shift-N", "I",
              "Shift-P", "Alt-P", "A", "Shift-F", "Shift-D")


def plane_keys(plane_labels: list[str]) -> list[tuple[str, str]]:
    """Digits 1..9 for the standard planes (the last label, non-standard, has key 0)."""
    return [(str(i + 1), plane) for i, plane in enumerate(plane_labels[:-1][:9])]


def help_rows(plane_labels: list[str]) -> list[tuple[str, str]]:
    rows = [(k, f"plane {p}") for k, p in plane_keys(plane_labels)]
    return rows + [(k, text) for k, _action, text in KEYS]


def help_text(plane_labels: list[str]) -> str:
    """Plain text, one binding a line (tests and tooltips)."""
    return "\n".join(f"{k}  {text}" for k, text in help_rows(plane_labels))


def help_html(plane_labels: list[str]) -> str:
    """A compact two-column table for the widget."""
    cells = [f"<td><b>{k}</b></td><td>{text}</td>" for k, text in help_rows(plane_labels)]
    half = (len(cells) + 1) // 2
    rows = [cells[i] + (cells[i + half] if i + half < len(cells) else "") for i in range(half)]
    return "<table cellspacing=2>" + "".join(f"<tr>{r}</tr>" for r in rows) + "</table>"


def _call(widget, action: str, *args):
    def handler(_viewer_or_layer):
        getattr(widget, action)(*args)

    return handler


def bind_all(widget, viewer, layer=None) -> list:
    """Bind every key on the viewer (and ``layer``); returns (target, key) pairs for unbinding."""
    table = [(k, "key_plane", (p,)) for k, p in plane_keys(widget.plane_labels)]
    table += [(k, a, ()) for k, a, _ in KEYS if a]
    bound = []
    for key, action, args in table:
        viewer.bind_key(key, _call(widget, action, *args), overwrite=True)
        bound.append((viewer, key))
        if layer is not None and (key in LAYER_KEYS or key.isdigit()):
            layer.bind_key(key, _call(widget, action, *args), overwrite=True)
            bound.append((layer, key))
    return bound


def unbind_all(bound: list) -> None:
    for target, key in bound:
        try:
            target.bind_key(key, None, overwrite=True)
        except (KeyError, ValueError, TypeError):
            pass
