"""A training run's folder and its JSON-lines progress log, readable while training writes it.

Run folder layout (written by :func:`napari_ultramn.model.train.train_run`)::

    RUN_DIR/run.json          arguments, dataset, vocabulary, model config (written at start)
    RUN_DIR/progress.jsonl    one JSON object per line: events "start", "step", "epoch", "end"
    RUN_DIR/last.pt           newest checkpoint (resume from here)
    RUN_DIR/best.pt           best validation score so far (evaluate / pre-annotate from here)
    RUN_DIR/eval/<split>/     metrics.json, CSVs and report.html from ``ultramn evaluate``

The log is appended and flushed line by line, so another process (the napari training widget, a
shell ``tail -f``) can follow it. A reader must tolerate a half-written last line: it keeps the
byte offset of the last complete line and reads on from there next time.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

PROGRESS_FILE = "progress.jsonl"
RUN_FILE = "run.json"


def _clean(value: Any) -> Any:
    """JSON cannot hold NaN/inf (strict readers choke): write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy / torch scalars
        return _clean(value.item())
    return value


class RunLog:
    """Appends events to ``RUN_DIR/progress.jsonl``; each line is flushed and fsynced on its own.

    ``enabled=False`` makes every call a no-op (non-zero DDP ranks write nothing).
    """

    def __init__(self, run_dir: str | Path, enabled: bool = True):
        self.path = Path(run_dir) / PROGRESS_FILE
        self.enabled = enabled
        self._fh = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, event: str, **fields: Any) -> dict:
        record = {"event": event, "time": time.time(), **_clean(fields)}
        if self._fh is not None:
            self._fh.write(json.dumps(record) + "\n")
            self._fh.flush()
            # fsync so a follower on another machine (network drive) sees whole lines
            os.fsync(self._fh.fileno())
        return record

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ProgressFollower:
    """Incrementally reads new complete lines of a progress log (the widget polls this)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.offset = 0
        self.records: list[dict] = []

    def poll(self) -> list[dict]:
        """New records since the last call (complete lines only); also appended to ``records``."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        new = []
        for line in chunk[: end + 1].splitlines():
            try:
                new.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line damaged by a crash mid-write; skip it, keep following
        self.offset += end + 1
        self.records.extend(new)
        return new


def read_progress(path: str | Path) -> list[dict]:
    """Every complete record of a progress log (a run folder or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / PROGRESS_FILE
    return ProgressFollower(path).poll()


def run_summary(run_dir: str | Path) -> dict:
    """What the run table shows: model, epochs done, best validation and latest test metrics."""
    run_dir = Path(run_dir)
    out: dict[str, Any] = {"run": run_dir.name, "path": str(run_dir)}
    try:
        info = json.loads((run_dir / RUN_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        info = {}
    out["model"] = info.get("args", {}).get("model")
    records = read_progress(run_dir)
    epochs = [r for r in records if r.get("event") == "epoch"]
    ends = [r for r in records if r.get("event") == "end"]
    out["epochs"] = epochs[-1]["epoch"] + 1 if epochs else 0
    out["state"] = ends[-1].get("reason", "finished") if ends else ("running or stopped" if records else "empty")
    if epochs:
        best = max(epochs, key=lambda r: r.get("metrics", {}).get("score") or -1.0)
        for key in ("val_dice", "val_plane_acc"):
            out[key] = best.get("metrics", {}).get(key)
    try:
        evaluation = json.loads((run_dir / "eval" / "test" / "metrics.json").read_text())
        metrics = evaluation["models"][evaluation["primary"]]
        out["test_dice"], out["test_plane_acc"] = metrics.get("dice"), metrics.get("plane_accuracy")
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        pass  # not evaluated yet
    return out


def list_runs(folder: str | Path) -> list[dict]:
    """Summaries of every run folder (one holding progress.jsonl or run.json) directly in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    runs = [
        p for p in sorted(folder.iterdir()) if p.is_dir() and ((p / PROGRESS_FILE).exists() or (p / RUN_FILE).exists())
    ]
    return [run_summary(p) for p in runs]
