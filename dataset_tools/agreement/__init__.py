"""Inter-rater agreement: plain statistics over arrays, and a project-level report built from them.

Modules: :mod:`.labels` (plane labels: percent agreement, Cohen/Fleiss kappa, Krippendorff's alpha,
Gwet's AC1), :mod:`.ordinal` (ordered grades such as image quality: weighted kappa,
ordinal/interval alpha), :mod:`.masks` (Dice, IoU, HD, HD95, ASSD, surface Dice in mm, from
:mod:`napari_ultramn.metrics`), :mod:`.area` (ICC with exact F / generalized CIs, Bland-Altman),
:mod:`.bootstrap` (CIs over participants), :mod:`.tables` (project -> tidy tables),
:mod:`.summaries`, :mod:`.figures`, :mod:`.project_report` (``agreement_report``: CSV + HTML),
:mod:`.demo` (the ``ultramn demo`` stage), :mod:`.synthetic` (a small multi-rater project for
tests and benchmarks). Importing this package is light; each
module imports its heavy libraries (pingouin, krippendorff, MONAI, matplotlib) when used.
"""
