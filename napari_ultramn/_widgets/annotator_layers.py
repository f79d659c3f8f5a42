"""The annotator's layers: the clip, the editable 'nerve' labels, a polygon layer, previews, raters.

The nerve Labels layer shows provenance by label value (1 human keyframe, 2 interpolated or
propagated, 3 model proposal, 4 assisted keyframe: a smart-keyframe proposal the rater accepted)
so filled frames look different from traced ones; any non-zero
pixel is nerve. Changes the user paints arrive as Labels ``paint`` events; changes made by the
core (undo, interpolation, propagation) are written into the layer's array directly, which emits
no paint event, so there is no feedback loop.
"""

from __future__ import annotations

import numpy as np

from ..annotation.model import PROVENANCES

NERVE = "nerve"
OUTLINE = "nerve outline (polygon)"
PREVIEW = "propagation preview"

_VALUE = {"drawn": 1, "model_edited": 1, "interpolated": 2, "propagated": 2, "model": 3, "assisted": 4}
_RATER_COLOURS = ("#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#17becf", "#e377c2")


def _colormap(colours: dict):
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(color_dict={None: "transparent", 0: "transparent", **colours})


def frame_value(provenance: str) -> int:
    return _VALUE[provenance]


def label_stack(annotation) -> np.ndarray:
    """``(T, H, W) uint8`` labels of an annotation, valued by provenance."""
    out = np.zeros((annotation.n_frames, *annotation.frame_shape), np.uint8)
    for t, fm in annotation.frames.items():
        out[t][fm.mask] = _VALUE[fm.provenance]
    return out


def painted_masks(data, atoms, current: int) -> dict[int, np.ndarray]:
    """The new ``(H, W) bool`` masks of the frames a Labels ``paint`` event changed.

    napari emits ``paint`` *before* writing a programmatic edit but *after* a mouse stroke, so
    the layer data alone cannot be trusted at that moment. The event's history atoms are applied
    on top of the data instead: setting pixels is idempotent, so the result is right either way.
    """
    n = data.shape[0]
    masks: dict[int, np.ndarray] = {}

    def frame(t: int) -> np.ndarray:
        if t not in masks:
            masks[t] = np.asarray(data[t]) > 0
        return masks[t]

    try:
        for atom in atoms:
            key = getattr(atom, "slice_key", None)
            if key is not None:  # napari's masked paint atom: a bounding box and a mask in it
                first, rest = key[0], tuple(key[1:])
                ts = range(*first.indices(n)) if isinstance(first, slice) else [int(first)]
                for i, t in enumerate(ts):
                    region = frame(t)[rest]  # basic slicing: a view into the frame mask
                    sel = Ellipsis if atom.mask is None else atom.mask[i]
                    region[sel] = atom.new_value != 0
            else:  # legacy (indices, old_values, new_values)
                idx, _old, new = atom
                values = np.broadcast_to(np.asarray(new) != 0, np.shape(idx[0]))
                for t in np.unique(np.asarray(idx[0])):
                    sel = np.asarray(idx[0]) == t
                    frame(int(t))[np.asarray(idx[1])[sel], np.asarray(idx[2])[sel]] = values[sel]
    except (TypeError, IndexError, ValueError, AttributeError):
        return {current: np.asarray(data[current]) > 0}
    return masks or {current: np.asarray(data[current]) > 0}


def add_clip_layers(viewer, session, metadata: dict, tool: dict | None = None) -> dict:
    """Add the clip, nerve, polygon and (review) rater layers; returns them by role.

    ``tool`` (``mode``, ``brush_size`` of the previous clip's nerve layer) carries the rater's
    tool over to the next clip: moving on never changes it.
    """
    clip = session.clip
    scale = (1.0, *(clip.spacing_mm or (1.0, 1.0)))
    image = viewer.add_image(clip.frames, name=f"clip {session.clip_id}", scale=scale,
                             contrast_limits=(0, 255), colormap="gray", metadata=dict(metadata))
    layers = {"image": image, "raters": []}
    for rater, ann in session.other_annotations().items():
        i = len(layers["raters"])
        colour = _RATER_COLOURS[i % len(_RATER_COLOURS)]
        masks = ann.mask_stack()[0].astype(np.uint8) * (i + 1)
        lay = viewer.add_labels(masks, name=f"rater {rater}", scale=scale, opacity=0.45,
                                colormap=_colormap({i + 1: colour}), metadata={"rater": rater})
        lay.contour = 2
        layers["raters"].append(lay)
    nerve = viewer.add_labels(
        label_stack(session.annotation), name=NERVE, scale=scale, opacity=0.5,
        colormap=_colormap({1: "#ffd21f", 2: "#3cc8e6", 3: "#dc5adc", 4: "#506eff"}), metadata=dict(metadata),
    )
    nerve.selected_label = 1
    nerve.brush_size = max(3, min(clip.frame_shape) // 40)
    for attr, value in (tool or {}).items():
        setattr(nerve, attr, value)
    layers["nerve"] = nerve
    layers["outline"] = viewer.add_shapes(
        ndim=3, name=OUTLINE, scale=scale, edge_color="#ffd21f", face_color="transparent", edge_width=1,
    )
    viewer.layers.selection.active = nerve
    if viewer.dims.ndim == 3:
        viewer.dims.axis_labels = ("frame", "row", "col")
    return layers


def tool_of(layers: dict) -> dict:
    """The nerve layer's tool (mode and brush size), to carry over to the next clip."""
    nerve = layers.get("nerve")
    return {} if nerve is None else {"mode": str(nerve.mode), "brush_size": int(nerve.brush_size)}


def remove_layers(viewer, layers: dict) -> None:
    for lay in list(layers.values()):
        for one in (lay if isinstance(lay, list) else [lay]):
            if one is not None and one in viewer.layers:
                viewer.layers.remove(one)
    layers.clear()


def write_frames(nerve, annotation, frames) -> None:
    """Copy the annotation's masks of ``frames`` into the layer (no paint event)."""
    for t in frames:
        fm = annotation.frames.get(t)
        if fm is None:
            nerve.data[t] = 0
        else:
            nerve.data[t] = np.where(fm.mask, _VALUE[fm.provenance], 0).astype(nerve.data.dtype)
    nerve.refresh()


def show_preview(viewer, layers: dict, result, shape: tuple[int, ...], scale) -> None:
    """Show a pending propagation's masks (not yet accepted) as outlines."""
    stack = np.zeros(shape, np.uint8)
    for t, m in result.masks.items():
        stack[t][m] = 1
    lay = layers.get("preview")
    if lay is None or lay not in viewer.layers:
        lay = viewer.add_labels(stack, name=PREVIEW, scale=scale, opacity=0.9,
                                colormap=_colormap({1: "#5ad26e"}))
        lay.contour = 1
        layers["preview"] = lay
    else:
        lay.data = stack
    viewer.layers.selection.active = layers["nerve"]


def drop_preview(viewer, layers: dict) -> None:
    lay = layers.pop("preview", None)
    if lay is not None and lay in viewer.layers:
        viewer.layers.remove(lay)


def polygons_to_masks(shapes_layer, frame_shape: tuple[int, int], current: int) -> dict[int, np.ndarray]:
    """Polygons of the outline layer as one mask per frame (union of that frame's polygons)."""
    from skimage.draw import polygon2mask

    out: dict[int, np.ndarray] = {}
    for verts, kind in zip(shapes_layer.data, shapes_layer.shape_type):
        if kind not in ("polygon", "rectangle", "ellipse") or len(verts) < 3:
            continue
        verts = np.asarray(verts, float)
        t = int(round(verts[0, 0])) if verts.shape[1] == 3 else current
        mask = polygon2mask(frame_shape, verts[:, -2:])
        out[t] = out.get(t, np.zeros(frame_shape, bool)) | mask
    return out


def provenance_codes_to_list(annotation) -> list[int]:
    """Per-frame provenance codes for the layer metadata (writers read it)."""
    return [int(c) for c in annotation.provenance_codes()]


__all__ = ["PROVENANCES", "add_clip_layers", "remove_layers", "write_frames", "label_stack"]
