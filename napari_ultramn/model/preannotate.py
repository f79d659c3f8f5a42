"""Model proposals written into an annotation project, and which clips to label next.

Never over a human's work - the design:

- By default proposals go to their own rater id, ``model`` (``annotations/<clip>/model.json``),
  every frame with provenance 'model' and a confidence. A rater accepts or edits a proposal in the
  annotator, which stores it under their own id ('model' or 'model_edited' provenance).
- Writing into a named rater (``rater='alice'``) only fills frames that have no mask yet (or
  hold an older 'model' proposal); drawn, edited, interpolated and propagated frames are kept, as
  are the rater's clip plane and plane ranges. A clip the rater marked 'done' is not touched.
- Re-running refreshes 'model' frames only; a 'model_edited' frame in the model file stays.

Ranking: clips no human has labelled yet (no drawn or edited keyframe by any rater) are ranked
by ``uncertainty = plane_entropy + boundary_uncertainty`` (equal weights; both in [0, 1]):

- ``plane_entropy``: mean over frames of the per-frame plane distribution's entropy / log(P);
- ``boundary_uncertainty``: mean over frames of sum(h) / (|mask| + sum(h)), h = binary entropy
  (bits) of each pixel's nerve probability: the share of the mask that is unsure, large where the
  boundary is vague, small for a crisp mask or a confident "no nerve".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import NON_STANDARD
from ..annotation import ClipAnnotation, PlaneRange
from ..annotation.store import MODEL_RATER as _MODEL_RATER
from ..progress import Progress, ProgressGen, run_to_end

MODEL_RATER = _MODEL_RATER


@dataclass
class Proposal:
    """The model's reading of one clip, at the clip's own frame size."""

    masks: np.ndarray  # (T, H, W) bool
    nerve_prob: np.ndarray  # (T, H, W) float32
    confidence: np.ndarray  # (T,) in [0, 1]
    plane_prob: np.ndarray  # (T, P)
    plane_labels: list[str]
    clip_plane: str
    clip_plane_prob: float
    plane_ranges: list[PlaneRange] = field(default_factory=list)
    uncertainty: dict[str, float] = field(default_factory=dict)
    source: str = ""

    @property
    def frame_planes(self) -> list[str]:
        return [self.plane_labels[i] for i in self.plane_prob.argmax(1)]

    def to_annotation(
        self, clip_id: str, rater: str = MODEL_RATER, existing: ClipAnnotation | None = None
    ) -> ClipAnnotation | None:
        """The annotation to save, merged into ``existing`` by the rules above; None = leave it alone."""
        n, h, w = self.masks.shape
        if existing is not None and (existing.n_frames != n or tuple(existing.frame_shape) != (h, w)):
            raise ValueError(f"{clip_id}: existing annotation of {rater} does not match the clip's shape")
        if existing is not None and rater != MODEL_RATER and existing.status == "done":
            return None
        ann = existing or ClipAnnotation(clip_id=clip_id, rater=rater, n_frames=n, frame_shape=(h, w))
        for t in range(n):
            old = ann.frames.get(t)
            if old is None or old.provenance == "model":
                ann.set_mask(t, self.masks[t], "model", confidence=float(self.confidence[t]))
        if rater == MODEL_RATER or ann.clip_plane is None:
            ann.clip_plane = self.clip_plane
        if rater == MODEL_RATER or not ann.plane_ranges:
            ann.plane_ranges = list(self.plane_ranges)
        if rater == MODEL_RATER:
            ann.comment = f"model proposal from {self.source}; clip plane p={self.clip_plane_prob:.2f}"
        ann.touch()
        return ann


def frame_confidence(nerve_prob: np.ndarray, presence_prob: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per frame: presence x mean in-mask probability where a nerve is proposed, else 1 - presence."""
    area = masks.reshape(len(masks), -1).sum(1)
    inside = (nerve_prob * masks).reshape(len(masks), -1).sum(1) / np.maximum(area, 1)
    return np.where(area > 0, presence_prob * inside, 1.0 - presence_prob).clip(0, 1)


def uncertainty(nerve_prob: np.ndarray, plane_prob: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    p = np.clip(plane_prob, 1e-8, 1.0)
    plane_entropy = float((-(p * np.log(p)).sum(1) / np.log(p.shape[1])).mean())
    q = np.clip(nerve_prob.astype(np.float64), 1e-6, 1 - 1e-6)
    h = -(q * np.log2(q) + (1 - q) * np.log2(1 - q))
    hs = h.reshape(len(h), -1).sum(1)
    boundary = float((hs / (masks.reshape(len(masks), -1).sum(1) + hs + 1e-9)).mean())
    return {"plane_entropy": plane_entropy, "boundary_uncertainty": boundary, "uncertainty": plane_entropy + boundary}


def plane_ranges(frame_planes: list[str], clip_plane: str) -> list[PlaneRange]:
    """Runs of frames whose predicted plane differs from the clip's (e.g. non-standard stretches)."""
    out, t = [], 0
    while t < len(frame_planes):
        if frame_planes[t] == clip_plane:
            t += 1
            continue
        start = t
        while t < len(frame_planes) and frame_planes[t] == frame_planes[start]:
            t += 1
        out.append(PlaneRange(start, t, frame_planes[start]))
    return out


def load_model(run_or_model, device: str = "auto"):
    """``(model, ckpt)`` from a run folder, checkpoint path or an already loaded pair."""
    if isinstance(run_or_model, tuple):
        return run_or_model
    from .checkpoint import model_from_checkpoint

    model, ckpt = model_from_checkpoint(run_or_model)
    return model, ckpt


def preannotate_clip(run_or_model, clip, device: str = "auto") -> ProgressGen[Proposal]:
    """Propose masks and planes for ``clip`` (a ``Clip`` or a ``(T, H, W)`` uint8 array)."""
    from .checkpoint import predict_clip
    from .evaluate import prediction_masks
    from .train import pick_device

    yield Progress(0, 2, "loading model")
    model, ckpt = load_model(run_or_model)
    frames = clip.to_array() if hasattr(clip, "to_array") else np.asarray(clip)
    if frames.ndim != 3:
        raise ValueError(f"a clip must be (T, H, W) frames, got shape {frames.shape}")
    yield Progress(1, 2, f"predicting {len(frames)} frames")
    pred = predict_clip(
        model, frames, window=ckpt["window"], input_size=ckpt["input_size"], device=str(pick_device(device))
    )
    masks = prediction_masks(pred)
    labels = list(ckpt["plane_labels"])
    standard = [i for i, name in enumerate(labels) if name != NON_STANDARD]
    best = (
        standard[int(np.argmax(pred["clip_plane_prob"][standard]))]
        if standard
        else int(np.argmax(pred["clip_plane_prob"]))
    )
    proposal = Proposal(
        masks=masks,
        nerve_prob=pred["nerve_prob"],
        confidence=frame_confidence(pred["nerve_prob"], pred["presence_prob"], masks),
        plane_prob=pred["plane_prob"],
        plane_labels=labels,
        clip_plane=labels[best],
        clip_plane_prob=float(pred["clip_plane_prob"][best]),
        source=str(ckpt.get("path", "")),
        uncertainty=uncertainty(pred["nerve_prob"], pred["plane_prob"], masks),
    )
    proposal.plane_ranges = plane_ranges(proposal.frame_planes, proposal.clip_plane)
    yield Progress(2, 2, f"proposed plane {proposal.clip_plane}", dict(proposal.uncertainty))
    return proposal


def human_labelled(project, clip_id: str) -> bool:
    """True when a human drew or edited a keyframe of the clip, or a human rater marked it done.

    A clip accepted as proposed (every frame 'model', status done) is finished human work too:
    it must never be offered again as a clip to label next.
    """
    return any(
        a.keyframes() or (rater != MODEL_RATER and a.status == "done")
        for rater, a in project.annotations.load_all(clip_id).items()
    )


def preannotate_project(
    run_dir, project, rater: str = MODEL_RATER, clip_ids=None, *, ranking_csv=None, device: str = "auto"
) -> ProgressGen[dict]:
    """Write proposals for ``clip_ids`` (default: every clip) and rank the unlabelled ones.

    Returns ``{"written": [clip ids], "skipped": [clip ids], "ranking": DataFrame, "csv": Path}``;
    the ranking CSV goes to ``ranking_csv`` (default ``RUN_DIR/preannotation_ranking.csv``).
    """
    import pandas as pd

    from ..annotation.clip_annotation import now_iso
    from ..annotation.model_doubt import record_model_doubt
    from ..annotation.store import check_id
    from ..atomic import atomic_write_text
    from ..errors import InputError
    from ..project import Project

    try:
        check_id("rater", rater)
    except ValueError as exc:
        raise InputError(None, str(exc)) from None
    project = project if isinstance(project, Project) else Project.open(project)
    ids = list(clip_ids) if clip_ids else project.clip_ids()
    for cid in ids:
        project.clip_record(cid)  # unknown ids fail before any work
    model = load_model(run_dir)
    if list(model[1]["plane_labels"]) != project.plane_labels:
        raise InputError(
            project.root, f"plane vocabulary {project.plane_labels} differs from the model's {model[1]['plane_labels']}"
        )
    rows, written, skipped = [], [], []
    for i, cid in enumerate(ids):
        yield Progress(i, len(ids), f"pre-annotating {cid}")
        clip = project.open_clip(cid)
        proposal = run_to_end(preannotate_clip(model, clip, device=device))
        labelled = human_labelled(project, cid)
        ann = proposal.to_annotation(cid, rater, project.annotations.load(cid, rater))
        if ann is None:
            skipped.append(cid)
        else:
            project.annotations.save(ann)
            written.append(cid)
        rows.append(
            {
                "clip_id": cid,
                "participant": clip.participant,
                "plane": clip.plane,
                "predicted_plane": proposal.clip_plane,
                "plane_probability": proposal.clip_plane_prob,
                **proposal.uncertainty,
                "human_labelled": labelled,
                "written": ann is not None,
            }
        )
    ranking = pd.DataFrame(rows)
    if len(ranking):
        ranking = ranking.sort_values(["human_labelled", "uncertainty"], ascending=[True, False]).reset_index(drop=True)
        # only unlabelled clips get a rank (1 = label next); labelled ones are listed after, rank empty
        rank = pd.array(np.arange(1, len(ranking) + 1), dtype="Int64")
        rank[ranking["human_labelled"].to_numpy()] = pd.NA
        ranking.insert(0, "rank", rank)
    base = Path(run_dir) if Path(run_dir).is_dir() else Path(run_dir).parent
    csv = Path(ranking_csv) if ranking_csv else base / "preannotation_ranking.csv"
    atomic_write_text(csv, ranking.to_csv(index=False))
    # the queue orders unlabelled clips by this (most doubtful first), whichever run wrote it
    record_model_doubt(project.root, {r["clip_id"]: r for r in rows}, str(run_dir), now_iso())
    yield Progress(len(ids), len(ids), f"wrote {len(written)} proposals")
    return {"written": written, "skipped": skipped, "ranking": ranking, "csv": csv}
