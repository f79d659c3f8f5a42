"""The words files, the command line and the dock share, each defined once.

A value written in an annotation, a dataset manifest or a run folder is one of these; the schemas
in ``schemas/`` list the same values (a test checks they agree). Plane names are the project's own
(``Project.planes``); the defaults are ``napari_ultramn.DEFAULT_PLANES`` + ``NON_STANDARD``.
"""

from __future__ import annotations

#: Networks ``model.network.build_model`` makes (stored as ``config["name"]``); the first is UltraMN.
MODEL_NAMES = ("ultramn", "unet2d", "ultramn_notemporal")
#: The baselines ``ultramn evaluate --baselines`` trains beside UltraMN.
BASELINE_MODELS = MODEL_NAMES[1:]

#: Dataset splits, one HDF5 file each, in this order.
SPLITS = ("train", "validation", "test")

#: A rater's grade of a whole clip.
QUALITIES = ("ok", "poor", "unusable")
#: A rater's progress on a clip.
STATUSES = ("not_started", "in_progress", "done")

#: Where a frame's mask came from (its index is the code in files). 'drawn', 'model_edited' and
#: 'assisted' are human keyframes. 'assisted' is a smart-keyframe proposal from the rater's clicks
#: that the rater accepted (and perhaps brushed): it anchors interpolation and propagation like
#: 'drawn' but is counted apart in effort figures. Appended last so older files' codes keep
#: their meaning.
PROVENANCES = ("drawn", "interpolated", "propagated", "model", "model_edited", "assisted")
HUMAN_PROVENANCES = ("drawn", "model_edited", "assisted")
