"""Look at a built dataset: the counts table, a short summary, and the dataset card (Markdown).

:func:`counts_table` reads the HDF5 files themselves (attributes and the small per-frame label
arrays, never the frames), so what it prints is what a training job will see even if the
manifest were stale.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from napari_ultramn.errors import InputError

from .splits import SPLITS

COUNT_COLUMNS = ["split", "plane", "side", "participants", "clips", "frames", "annotated_frames"]


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


def dataset_files(folder: str | Path) -> dict[str, Path]:
    """Split -> HDF5 path of the splits present in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "is not a folder")
    files = {s: folder / f"{s}.h5" for s in SPLITS if (folder / f"{s}.h5").is_file()}
    if not files:
        raise InputError(folder, "holds no dataset files (train.h5, validation.h5, test.h5)")
    return files


def clip_table(folder: str | Path):
    """One row per clip: split, clip_id, participant, side, plane, frames, annotated_frames, H, W."""
    from napari_ultramn.io.h5 import load_h5py

    h5py = load_h5py()
    import pandas as pd

    rows = []
    for split, path in dataset_files(folder).items():
        try:
            fh = h5py.File(path, "r")
        except OSError as exc:
            raise InputError(path, f"is not a readable HDF5 file ({exc})") from None
        with fh:
            for clip_id, g in fh.get("clips", {}).items():
                a = g.attrs
                t, h, w = g["frames"].shape
                rows.append(
                    {
                        "split": split,
                        "clip_id": clip_id,
                        "participant": _text(a.get("participant")),
                        "side": _text(a.get("side")) or "unknown",
                        "plane": _text(a.get("clip_plane")) or _text(a.get("plane")) or "unknown",
                        "frames": t,
                        "annotated_frames": int(np.count_nonzero(g["annotated"][()])),
                        "H": h,
                        "W": w,
                    }
                )
    cols = ["split", "clip_id", "participant", "side", "plane", "frames", "annotated_frames", "H", "W"]
    return pd.DataFrame(rows, columns=cols)


#: what the counts table sums per group (per split, plane and side; per split for the totals)
_COUNTS = {
    "participants": ("participant", "nunique"),
    "clips": ("clip_id", "count"),
    "frames": ("frames", "sum"),
    "annotated_frames": ("annotated_frames", "sum"),
}


def counts_table(folder: str | Path, with_totals: bool = True):
    """Counts per split / plane / side (participants, clips, frames, annotated frames)."""
    import pandas as pd

    clips = clip_table(folder)
    if clips.empty:
        return pd.DataFrame(columns=COUNT_COLUMNS)
    grouped = clips.groupby(["split", "plane", "side"], sort=False).agg(**_COUNTS).reset_index()
    grouped["order"] = grouped["split"].map({s: i for i, s in enumerate(SPLITS)})
    grouped = grouped.sort_values(["order", "plane", "side"]).drop(columns="order")
    if with_totals:
        totals = clips.groupby("split", sort=False).agg(**_COUNTS).reset_index()
        totals["plane"], totals["side"] = "(all)", "(all)"
        totals["order"] = totals["split"].map({s: i for i, s in enumerate(SPLITS)})
        totals = totals.sort_values("order").drop(columns="order")
        grouped = pd.concat([grouped, totals[COUNT_COLUMNS]], ignore_index=True)
    return grouped[COUNT_COLUMNS].reset_index(drop=True)


def read_manifest(folder: str | Path) -> dict:
    from napari_ultramn.schema import read_json

    return read_json(Path(folder) / "manifest.json", "dataset_manifest")


def manifest_summary(manifest: dict) -> dict:
    """A few headline numbers for the widget, the CLI and the demo report."""
    files = {f["split"]: f for f in manifest["files"]}
    return {
        "project": manifest["project"]["name"],
        "labels": manifest["label_source"].get("description") or manifest["label_source"]["method"],
        "seed": manifest["split"]["seed"],
        "ratios": manifest["split"]["ratios"],
        **{f"{s}_clips": files[s]["clips"] for s in SPLITS if s in files},
        **{f"{s}_participants": files[s]["participants"] for s in SPLITS if s in files},
        "frames": sum(f["frames"] for f in manifest["files"]),
        "excluded": len(manifest["excluded"]),
        "size": manifest["build"]["size"],
        "spacing_mm": manifest["build"]["spacing_mm"],
    }


def dataset_card(manifest: dict) -> str:
    """The dataset card: what it is, where the labels come from, how it was split, the counts."""
    import pandas as pd

    counts = pd.DataFrame(manifest["counts"], columns=COUNT_COLUMNS)
    ls, sp, b = manifest["label_source"], manifest["split"], manifest["build"]
    labels = (
        f"one rater, `{ls['rater']}`"
        if ls["method"] == "rater"
        else f"consensus of at least {ls.get('min_raters', 2)} raters, `{ls['consensus']}`"
    )
    geometry = []
    if b.get("spacing_mm"):
        geometry.append(f"resampled to {b['spacing_mm']} mm per pixel")
    if b.get("size"):
        geometry.append(
            f"{'cropped/padded' if b.get('spacing_mm') else 'resized'} to {b['size'][0]} x {b['size'][1]} pixels"
        )
    files = "\n".join(
        f"| {f['file']} | {f['participants']} | {f['clips']} | {f['frames']} | "
        f"{f['bytes'] / 1e6:.1f} | `{f['sha256'][:16]}...` |"
        for f in manifest["files"]
    )
    excluded = (
        "\n".join(f"- `{e['clip_id']}` ({e.get('participant') or '?'}): {e['reason']}" for e in manifest["excluded"])
        or "None."
    )
    planes = json.dumps(manifest.get("frame_planes", {}), indent=1)
    balance = "\n".join(
        f"| {k} | " + " | ".join(str(v.get(s, 0)) for s in SPLITS) + " |" for k, v in sp.get("balance", {}).items()
    )
    return f"""# Dataset card: {manifest["project"]["name"]}

Median-nerve ultrasound video clips with nerve masks and per-frame plane labels, built by
napari-ultramn {manifest["software_version"]} on {manifest["created"]}.

## Contents
- Labels: {labels}. Per frame: nerve mask, plane label (codes into the vocabulary; -1 unknown),
  provenance (codes into {", ".join(manifest["provenances"])}; -1 unannotated) and an
  `annotated` flag. Unannotated frames have empty masks and must be ignored by losses.
- Plane vocabulary: {", ".join(f"{i} = {v}" for i, v in enumerate(manifest["vocabulary"]))}.
- Geometry: {"; ".join(geometry) or "frames at their native size and spacing"}; the spacing after
  resampling is stored per clip (`spacing_mm`, absent = uncalibrated pixels).

## Split
By participant ({sp["method"]}, seed {sp["seed"]}, ratios train/validation/test =
{sp["ratios"]["train"]}/{sp["ratios"]["validation"]}/{sp["ratios"]["test"]}): every clip, side
and plane of a participant is in one split. `{sp["file"]}` rebuilds it exactly
(`ultramn build-dataset PROJECT OUT --split-file {sp["file"]}`).

| file | participants | clips | frames | MB | sha256 |
|---|---|---|---|---|---|
{files}

Balance of the strata (clips per split; demographics where the registry has them):

| stratum | train | validation | test |
|---|---|---|---|
{balance}

## Counts per split, plane and side
{counts.to_markdown(index=False) if _has_tabulate() else counts.to_string(index=False)}

Frame-level plane labels per split:
```
{planes}
```

## De-identification
{_deid_text(manifest.get("deidentification"))}

## Suspected duplicates
{_duplicates_text(manifest.get("suspected_duplicates"))}

## Excluded clips
{excluded}

## Format
One HDF5 file per split (frames compressed with {_filter_name(b.get("compression"))}, masks with
Blosc-LZ4, one frame per chunk); `/clips/<clip_id>/` holds `frames (T, H, W) uint8`, `masks (T, H, W)
uint8`, `plane_labels (T,) int16`, `provenance (T,) int8`, `annotated (T,) bool` and the clip's
de-identified attributes (participant pseudonym, side, plane, source sha256, spacing, device).
Check it with `ultramn validate-dataset DIR`; train from it with
`napari_ultramn.model.loader.ClipWindowDataset`. Blosc is an HDF5 filter plugin: outside this
package, `import hdf5plugin` before opening the files with h5py (HDFView and other HDF5 tools need
the Blosc plugin installed).
"""


def _deid_text(deid: dict | None) -> str:
    """The card's account of how frames were cropped, and a warning for clips kept whole."""
    if not deid:
        return "Not recorded (dataset built before imaging areas were recorded)."
    words = {
        "dicom-regions": "from the DICOM ultrasound regions",
        "detected": "detected from the pixels",
        "mapping": "from the mapping CSV's region column",
        "corrected": "from a region corrected by hand",
    }
    parts = [
        f"{n} {words.get(src, 'from ' + src)}"
        for src, n in sorted(deid["imaging_area_sources"].items())
        if not src.startswith("none")
    ]
    text = (
        "Frames are cropped to the ultrasound imaging area and static overlays inside it are "
        f"blanked: {', '.join(parts) or 'no clip'}."
    )
    if deid["uncropped_clips"]:
        text += (
            f"\n\n**Warning:** {len(deid['uncropped_clips'])} clip(s) were ingested with `--no-crop` and "
            "keep the whole screen, including any text burned into it: "
            + ", ".join(f"`{c}`" for c in deid["uncropped_clips"])
            + "."
        )
    return text


def _duplicates_text(groups: list | None) -> str:
    """Participants linked by near-identical clips, which the split kept together."""
    if not groups:
        return "None found (perceptual fingerprints of every clip, compared across participants)."
    lines = [
        f"- participants {', '.join(f'`{p}`' for p in g['participants'])} (kept in "
        f"{' / '.join(g['splits'])}): "
        + ", ".join(f"`{p['clip_a']}` ~ `{p['clip_b']}` ({p['distance']:.3f})" for p in g["pairs"])
        for g in groups
    ]
    return (
        "Clips of these participants hold near-identical frames, most likely one patient under two "
        "ids; each group was kept in one split so it cannot leak between them:\n" + "\n".join(lines)
    )


def _filter_name(compression) -> str:
    return {"zstd": "Blosc-Zstd", "lz4": "Blosc-LZ4", "gzip": "gzip", "lzf": "lzf"}.get(compression, "no filter")


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True
