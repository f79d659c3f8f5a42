"""The read-only part of a :class:`~napari_ultramn.project.Project` that a worker process needs.

Workers of :func:`napari_ultramn.parallel.pool_map` get plain data (a project holds a registry,
perhaps a database connection, and must not be opened thousands of times): the root, the plane
vocabulary and the registry records of the clips they work on. A :class:`ProjectView` answers
the calls the per-clip functions make (``annotations``, ``plane_labels``, ``clip_record``,
``clip_path``, ``open_clip``) from that, and never writes the registry.
"""

from __future__ import annotations

from pathlib import Path

from napari_ultramn.annotation import AnnotationStore
from napari_ultramn.errors import InputError


class ProjectView:
    def __init__(self, root: str | Path, planes: list[str], plane_labels: list[str], records=()):
        self.root = Path(root)
        self.planes, self.plane_labels = list(planes), list(plane_labels)
        self.annotations = AnnotationStore(self.root)
        self._records = {r["clip_id"]: r for r in records}

    @classmethod
    def of(cls, project, records=()) -> ProjectView:
        """A view of ``project`` knowing ``records`` (picklable: send it to workers)."""
        return cls(project.root, project.planes, project.plane_labels, records)

    def with_records(self, records) -> ProjectView:
        return ProjectView(self.root, self.planes, self.plane_labels, records)

    def clip_record(self, clip_id: str) -> dict:
        try:
            return self._records[clip_id]
        except KeyError:
            raise InputError(self.root, f"project has no clip '{clip_id}'") from None

    def clip_path(self, clip_id: str) -> Path:
        return self.root / self.clip_record(clip_id)["file"]

    def open_clip(self, clip_id: str):
        from napari_ultramn.project import Project

        return Project.open_clip(self, clip_id)  # type: ignore[arg-type]  # duck-typed: only clip_path/clip_record
