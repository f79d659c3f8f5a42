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

from ..annotation.clip_annotation import PROVENANCES

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


class ClipLayers:
    """The annotator's layers in one viewer: made once, then refilled for every clip.

    Moving to another clip swaps each layer's data, scale, name and metadata instead of removing
    and adding layers: napari's remove/add costs 0.1-0.3 s per layer (a ``gc.collect`` and new GL
    visuals), which made a clip switch take over a second. The rater's tool (mode, brush size)
    therefore stays with the nerve layer; its own undo history is cleared per clip, so napari's
    undo can never paint an earlier clip's strokes into this one. A layer the user deleted by hand
    is made again on the next :meth:`fill`. Review raters' layers are a pool: those a clip does not
    need are hidden and emptied. ``roles`` is what the widget uses: ``image``, ``nerve``,
    ``outline``, ``raters`` (the ones in use) and, once a propagation was previewed, ``preview``.
    """

    def __init__(self, viewer, on_paint, on_shapes):
        self.viewer = viewer
        self.roles: dict = {}
        self.tool: dict = {}  # the nerve layer's tool, for a nerve layer made again
        self._pool: list = []  # every rater layer made so far, in colour order
        self._on_paint, self._on_shapes = on_paint, on_shapes

    def _alive(self, lay) -> bool:
        return lay is not None and lay in self.viewer.layers

    def fill(self, session, metadata: dict) -> dict:
        """Show ``session``'s clip in the layers (made where missing); returns ``roles``."""
        clip, viewer = session.clip, self.viewer
        scale = (1.0, *(clip.spacing_mm or (1.0, 1.0)))
        old = self.roles.get("nerve")
        before = (old.data.shape, tuple(old.scale)) if self._alive(old) else None
        made = False
        image = self.roles.get("image")
        if self._alive(image):
            _swap(image, clip.frames, scale)
            image.name = f"clip {session.clip_id}"
            image.metadata = dict(metadata)
        else:
            image = viewer.add_image(
                clip.frames,
                name=f"clip {session.clip_id}",
                scale=scale,
                contrast_limits=(0, 255),
                colormap="gray",
                metadata=dict(metadata),
            )
            ours = [viewer.layers.index(lay) for lay in (self.roles.get("nerve"), *self._pool) if self._alive(lay)]
            if ours:  # made again after the user deleted it: back under the masks
                viewer.layers.move(viewer.layers.index(image), min(ours))
            made = True
        raters = self._fill_raters(session, scale)
        nerve = self.roles.get("nerve")
        labels = label_stack(session.annotation)
        if self._alive(nerve):
            self.tool = tool_of({"nerve": nerve})
            _swap(nerve, labels, scale)
            nerve.metadata = dict(metadata)
        else:
            nerve = self._add_nerve(labels, scale, metadata, min(clip.frame_shape))
            made = True
        _forget_history(nerve)
        outline = self.roles.get("outline")
        if self._alive(outline):
            if len(outline.data):  # emptying an empty Shapes layer still rebuilds its visual
                outline.data = []
            if tuple(outline.scale) != scale:
                outline.scale = scale
        else:
            outline = viewer.add_shapes(
                ndim=3, name=OUTLINE, scale=scale, edge_color="#ffd21f", face_color="transparent", edge_width=1
            )
            outline.events.data.connect(self._on_shapes)
        preview = self.roles.get("preview")
        if self._alive(preview):
            preview.visible = False
            if preview.data.shape != labels.shape or tuple(preview.scale) != scale:
                _swap(preview, np.zeros(labels.shape, np.uint8), scale)  # hidden, its extent still counts
        self.roles = {
            "image": image,
            "nerve": nerve,
            "outline": outline,
            "raters": raters,
            **({"preview": preview} if self._alive(preview) else {}),
        }
        if viewer.layers.selection.active is not nerve:
            viewer.layers.selection.active = nerve
        if made or before != (nerve.data.shape, tuple(nerve.scale)):
            viewer.reset_view()  # a new size or pixel spacing: show the whole clip
        if viewer.dims.ndim == 3 and viewer.dims.axis_labels[1:] != ("row", "col"):
            viewer.dims.axis_labels = (viewer.dims.axis_labels[0], "row", "col")
        return self.roles

    def _add_nerve(self, labels, scale, metadata: dict, short_side: int):
        nerve = self.viewer.add_labels(
            labels,
            name=NERVE,
            scale=scale,
            opacity=0.5,
            colormap=_colormap({1: "#ffd21f", 2: "#3cc8e6", 3: "#dc5adc", 4: "#506eff"}),
            metadata=dict(metadata),
        )
        nerve.selected_label = 1
        nerve.brush_size = max(3, short_side // 40)
        for attr, value in self.tool.items():
            setattr(nerve, attr, value)
        nerve.events.paint.connect(self._on_paint)
        return nerve

    def _fill_raters(self, session, scale) -> list:
        """Review mode: one layer per other rater, from the pool; the rest hidden and emptied."""
        shape = session.clip.shape
        self._pool = [lay for lay in self._pool if self._alive(lay)]
        used = []
        for i, (rater, ann) in enumerate(session.other_annotations().items()):
            masks = ann.mask_stack()[0].astype(np.uint8) * (i + 1)
            if i < len(self._pool):
                lay = self._pool[i]
                _swap(lay, masks, scale)
                lay.name, lay.metadata, lay.visible = f"rater {rater}", {"rater": rater}, True
            else:
                colour = _RATER_COLOURS[i % len(_RATER_COLOURS)]
                lay = self.viewer.add_labels(
                    masks,
                    name=f"rater {rater}",
                    scale=scale,
                    opacity=0.45,
                    colormap=_colormap({i + 1: colour}),
                    metadata={"rater": rater},
                )
                lay.contour = 2
                self._pool.append(lay)
            used.append(lay)
        for lay in self._pool[len(used) :]:
            lay.visible = False
            if lay.data.shape != shape or lay.data.any():
                _swap(lay, np.zeros(shape, np.uint8), scale)
            lay.metadata = {"rater": None}
        return used

    def show_preview(self, result) -> None:
        """Show a pending propagation's masks (not yet accepted) as outlines."""
        nerve = self.roles["nerve"]
        lay = self.roles.get("preview")
        reuse = self._alive(lay) and lay.data.shape == nerve.data.shape and lay.data.flags.writeable
        stack = lay.data if reuse else np.zeros(nerve.data.shape, np.uint8)
        if reuse:
            stack[...] = 0
        for t, m in result.masks.items():
            stack[t][m] = 1
        if reuse and not lay.visible and tuple(lay.scale) == tuple(nerve.scale):
            lay.visible = True  # napari refreshes a layer as it becomes visible: once is enough
        elif self._alive(lay):
            _swap(lay, stack, nerve.scale)
            lay.visible = True
        else:
            lay = self.viewer.add_labels(
                stack, name=PREVIEW, scale=nerve.scale, opacity=0.9, colormap=_colormap({1: "#5ad26e"})
            )
            lay.contour = 1
            self.roles["preview"] = lay
        self.viewer.layers.selection.active = nerve

    def hide_preview(self) -> None:
        """Kept (hidden) for the next propagation: adding a layer costs more than the preview."""
        lay = self.roles.get("preview")
        if self._alive(lay) and lay.visible:
            lay.visible = False

    def remove(self) -> None:
        """Remove every layer made here (the project or the dock is closed)."""
        if self._alive(self.roles.get("nerve")):
            self.tool = tool_of(self.roles)
        for lay in [*(v for k, v in self.roles.items() if k != "raters"), *self._pool]:
            if self._alive(lay):
                self.viewer.layers.remove(lay)
        self.roles, self._pool = {}, []


def _swap(layer, data, scale) -> None:
    """Give ``layer`` new data and pixel spacing.

    An array of the same shape is copied into the layer's own (a few MB): setting ``data`` makes
    napari recompute the viewer's dims and re-slice every layer, which a copy and one refresh avoid.
    """
    if tuple(layer.scale) != tuple(scale):
        layer.scale = scale
    old = layer.data
    if (
        isinstance(old, np.ndarray)
        and isinstance(data, np.ndarray)
        and old.flags.writeable
        and old.shape == data.shape
        and old.dtype == data.dtype
    ):
        if old is not data:
            old[...] = data
        layer.refresh()
    else:
        layer.data = data


def _forget_history(nerve) -> None:
    """Clear napari's own undo history of ``nerve``, so its undo never reaches the last clip.

    napari clears it when a Labels layer stops being editable (public API; that also drops the
    mode to pan/zoom, so the rater's tool is put back).
    """
    tool = tool_of({"nerve": nerve})
    nerve.editable = False
    nerve.editable = True
    for attr, value in tool.items():
        setattr(nerve, attr, value)


def tool_of(layers: dict) -> dict:
    """The nerve layer's tool (mode and brush size), to carry over to the next clip."""
    nerve = layers.get("nerve")
    return {} if nerve is None else {"mode": str(nerve.mode), "brush_size": int(nerve.brush_size)}


def write_frames(nerve, annotation, frames, shown: int | None = None) -> None:
    """Copy the annotation's masks of ``frames`` into the layer (no paint event).

    The layer is redrawn only if frame ``shown`` (the one on screen; None: always) changed: the
    other frames are read from the array when the slider reaches them.
    """
    data = nerve.data
    for t in frames:
        fm = annotation.frames.get(t)
        if fm is None:
            data[t] = 0
        else:
            # bool is one byte of 0/1: viewed as uint8 the product stays in uint8 (7x faster than
            # a bool x int product cast back, which made a 300-frame interpolation wait for it)
            np.multiply(fm.mask.view(np.uint8), np.uint8(_VALUE[fm.provenance]), out=data[t])
    if shown is None or shown in frames:
        nerve.refresh()


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


__all__ = ["PROVENANCES", "ClipLayers", "write_frames", "label_stack"]
