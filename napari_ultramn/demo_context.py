"""What ``ultramn demo`` stages share. Each stage is ``demo_stage(ctx) -> ProgressGen[ReportSection]``.

Stages run in order and fill ``ctx.paths`` / ``ctx.results`` for later ones:

=============  =====================================================  ==========================
stage          module                                                 sets paths[...]
=============  =====================================================  ==========================
phantom        napari_ultramn.phantom.demo                            "study"
ingest         dataset_tools.ingest_demo                              "project"
agreement      dataset_tools.agreement.demo                           "agreement" (raters added)
dataset        dataset_tools.dataset_demo                             "dataset"
model          napari_ultramn.model.demo                              "run"
=============  =====================================================  ==========================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class DemoContext:
    out_dir: Path
    #: small sizes for tests and CI (seconds); the default demo is still a few minutes at most
    quick: bool = False
    seed: int = 0
    paths: dict[str, Path] = field(default_factory=dict)
    results: dict[str, object] = field(default_factory=dict)
