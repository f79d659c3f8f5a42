"""How unsure the model was about each clip (``PROJECT/model_doubt.json``), for the work queue.

Pre-annotation measures, per clip, plane entropy + mask-boundary uncertainty. Kept in the project
(not only in the run folder's ranking CSV) so the annotator's queue can offer the most doubtful
unlabelled clips first, whichever run made the proposals: a later run overwrites the clips it saw.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..errors import InputError
from ..schema import read_json, write_json

DOUBT_FILE = "model_doubt.json"
_SCHEMA = "model_doubt"


def doubt_path(project_root: str | Path) -> Path:
    return Path(project_root) / DOUBT_FILE


def read_model_doubt(project_root: str | Path) -> dict[str, float]:
    """``{clip_id: uncertainty}``; empty when no model has pre-annotated the project.

    A damaged file only loses the ordering, never the queue: it reads as empty (the next
    pre-annotation rewrites it).
    """
    path = doubt_path(project_root)
    if not path.exists():
        return {}
    try:
        obj = read_json(path, _SCHEMA)
    except InputError:
        return {}
    return {cid: float(v["uncertainty"]) for cid, v in obj["clips"].items()}


def record_model_doubt(project_root: str | Path, rows: Mapping[str, Mapping], source: str, written_at: str) -> Path:
    """Merge ``{clip_id: {"uncertainty": u, "predicted_plane": p}}`` into the file (atomic)."""
    path = doubt_path(project_root)
    clips: dict = {}
    if path.exists():
        try:
            clips = dict(read_json(path, _SCHEMA)["clips"])
        except InputError:
            clips = {}  # rewritten whole below: a damaged file is replaced, never appended to
    for cid, row in rows.items():
        entry = {"uncertainty": max(0.0, float(row["uncertainty"])), "source": str(source), "written_at": written_at}
        if row.get("predicted_plane"):
            entry["predicted_plane"] = str(row["predicted_plane"])
        clips[str(cid)] = entry
    write_json(path, {"format": "ultramn-model-doubt", "schema_version": 1, "clips": clips}, _SCHEMA)
    return path
