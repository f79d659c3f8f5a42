"""What the audit found: hits by category, printable and as JSON, with every identifier masked."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

#: Hit categories, in the order they are listed. Every one of them fails the audit.
CATEGORIES = {
    "identifier": "identifiers ingest saw",
    "pattern": "identifier-shaped values (not from the list)",
    "burned_text": "text burned into images",
    "unreadable": "files that could not be checked",
}


@dataclass(frozen=True)
class Hit:
    """One finding. ``file`` and ``location`` are already redacted (identifiers masked)."""

    category: str  # a key of CATEGORIES
    file: str
    location: str  # JSON path / CSV row+column / HDF5 object+attribute / DICOM tag / frames+bbox
    what: str  # e.g. "patient_name (full name) M***(12)", "date 2***(10)", "text-like block"

    def line(self) -> str:
        return f"{self.file}  [{self.location}]  {self.what}"


@dataclass
class AuditReport:
    paths: list[str]
    hits: list[Hit] = field(default_factory=list)
    files_scanned: int = 0
    identifiers_searched: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.hits

    def by_category(self, category: str) -> list[Hit]:
        return [h for h in self.hits if h.category == category]

    def summary(self) -> str:
        if self.clean:
            return (
                f"clean: {self.files_scanned} files, {self.identifiers_searched} identifiers, "
                "no identifier, identifier-shaped value or burned-in text found"
            )
        counts = ", ".join(
            f"{len(self.by_category(c))} {c.replace('_', ' ')}" for c in CATEGORIES if self.by_category(c)
        )
        return f"NOT clean: {len(self.hits)} hit(s) ({counts}) in {self.files_scanned} files"

    def lines(self) -> list[str]:
        """The printable report: hits grouped by category, notes, then the verdict."""
        out = []
        for category, title in CATEGORIES.items():
            hits = self.by_category(category)
            if hits:
                out.append(f"{title} ({len(hits)}):")
                out += [f"  {h.line()}" for h in hits]
        if self.notes:
            out.append("notes:")
            out += [f"  {n}" for n in self.notes]
        out.append(self.summary())
        return out

    def to_dict(self) -> dict:
        return {
            "format": "ultramn-phi-audit",
            "schema_version": 1,
            "clean": self.clean,
            "paths": list(self.paths),
            "files_scanned": self.files_scanned,
            "identifiers_searched": self.identifiers_searched,
            "hits": [asdict(h) for h in self.hits],
            "notes": list(self.notes),
        }
