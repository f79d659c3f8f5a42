"""``ultramn demo``: the whole pipeline on a synthetic phantom study, one stage module per step.

An application layer like the command line: its stages call the core (``napari_ultramn``) and the
data manager's tools (``dataset_tools``); nothing below imports it. The pipeline is
:mod:`.pipeline` (stages, progress, resume, the report); each stage is ``<stage>_stage.py`` with
``demo_stage(ctx)``; :mod:`.context` holds what stages hand each other.
"""

from .pipeline import STAGE_SECONDS, STAGES, DemoResult, run_demo

__all__ = ["STAGES", "STAGE_SECONDS", "DemoResult", "run_demo"]
