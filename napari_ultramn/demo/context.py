"""What ``ultramn demo`` stages share. Each stage is ``demo_stage(ctx) -> ProgressGen[ReportSection]``.

Stages run in order and fill ``ctx.paths`` / ``ctx.results`` for later ones:

=============  =====================================================  ==========================
stage          module                                                 sets paths[...]
=============  =====================================================  ==========================
phantom        napari_ultramn.demo.phantom_stage                      "study"
ingest         napari_ultramn.demo.ingest_stage                       "project"
agreement      napari_ultramn.demo.agreement_stage                    "agreement" (raters added)
dataset        napari_ultramn.demo.dataset_stage                      "dataset"
model          napari_ultramn.demo.model_stage                        "run"
=============  =====================================================  ==========================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_ultramn.errors import InputError

#: paths[...] key -> (folder under the output folder, the stage that makes it)
STAGE_OUTPUTS = {
    "study": ("study", "phantom"),
    "project": ("project", "ingest"),
    "agreement": ("agreement", "agreement"),
    "dataset": ("dataset", "dataset"),
    "run": ("run", "model"),
}


class StagePaths(dict):
    """``paths[name]``: set by the stage that made it in this run, else found in the output folder.

    So ``ultramn demo --stages model`` resumes on the folder an earlier demo left; a missing
    output names the stage to run first.
    """

    def __init__(self, out_dir: Path):
        super().__init__()
        self.out_dir = Path(out_dir)

    def __missing__(self, name: str) -> Path:
        folder, stage = STAGE_OUTPUTS[name]
        path = self.out_dir / folder
        if not path.exists():
            raise InputError(
                self.out_dir,
                f"has no {folder}/ from an earlier demo; run the '{stage}' stage "
                f"first (ultramn demo --out {self.out_dir} --stages {stage} ...)",
            )
        self[name] = path
        return path


@dataclass
class DemoContext:
    out_dir: Path
    #: small sizes for tests and CI (seconds); the default demo is still a few minutes at most
    quick: bool = False
    seed: int = 0
    paths: StagePaths = None  # type: ignore[assignment]  # made from out_dir
    results: dict[str, Any] = field(default_factory=dict)  # a manifest, DataFrames, summaries

    def __post_init__(self):
        self.out_dir = Path(self.out_dir)
        if self.paths is None:
            self.paths = StagePaths(self.out_dir)
