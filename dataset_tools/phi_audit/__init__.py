"""``ultramn audit-phi``: proof that nothing identifying left ingest.

Searches every file under projects, datasets, reports and run folders for the identifiers ingest
saw (``PROJECT/.secret/identifiers.json``, or a ``kind,value`` CSV), for identifier-shaped
values no list names (person names, record numbers, dates), and for text still burned into
frames. Modules: :mod:`.identifiers` (the list and the matcher), :mod:`.patterns` (the shapes),
:mod:`.text_scan` (JSON, CSV, HTML, text, binary strings), :mod:`.containers` (HDF5, DICOM),
:mod:`.media` (images, videos, arrays), :mod:`.burned_text` (the glyph detector),
:mod:`.walk` (the walk and :func:`audit_paths`), :mod:`.report`.

Ingest and build-dataset call it at the end::

    report = yield from audit_project(project_root)  # = audit_paths([root], load_identifiers(root))
    if report.hits: ...  # report.lines() says where, with every identifier masked
"""

from .burned_text import TextRegion, find_burned_text
from .identifiers import (
    KINDS,
    Identifier,
    Matcher,
    find_projects,
    identifiers_file,
    load_identifiers,
    mask_value,
    read_identifiers_csv,
)
from .report import AuditReport, Hit
from .walk import audit_paths, audit_project

__all__ = [
    "KINDS",
    "AuditReport",
    "Hit",
    "Identifier",
    "Matcher",
    "TextRegion",
    "audit_paths",
    "audit_project",
    "find_burned_text",
    "find_projects",
    "identifiers_file",
    "load_identifiers",
    "mask_value",
    "read_identifiers_csv",
]
