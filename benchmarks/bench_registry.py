"""Issue 16: the registry cost of ingest, clip by clip, as the project grows (no decoding).

For each size N, a fresh project gets N records upserted one at a time, as ``ultramn ingest`` does
(one transaction each), then the audit export (``clips.json``, once per run) and the conversion of
an old project holding N records. The baseline, in the same run, is the JSON registry as it was:
every upsert re-reads, re-validates and rewrites the whole ``clips.json`` (``--json-up-to`` caps
its sizes: it grows with N squared, 200 records already take a minute). Linear means the time per
clip stays flat, so N x4 -> time x4 (the JSON registry: x16).

    python3 benchmarks/bench_registry.py [--sizes 200 800 2000] [--json-sizes 50 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from napari_ultramn.project import CLIPS_FILE, Project, ProjectLock  # noqa: E402
from napari_ultramn.registry import REGISTRY_FILE  # noqa: E402
from napari_ultramn.schema import read_json, write_json  # noqa: E402


def record(i: int) -> dict:
    """A record shaped like ingest's (imaging area with a run-length mask: ~1 KB of JSON)."""
    return {
        "clip_id": f"P{i % 97:05d}-{i:08x}",
        "file": f"clips/P{i % 97:05d}-{i:08x}.h5",
        "participant": f"P{i % 97:05d}",
        "side": ("left", "right")[i % 2],
        "plane": ("transverse_wrist", "longitudinal_wrist", "transverse_forearm")[i % 3],
        "source_sha256": f"{i:064x}",
        "n_frames": 120,
        "frame_shape": [480, 640],
        "spacing_mm": [0.08, 0.08],
        "spacing_source": "us_region",
        "frame_time_ms": 33.3,
        "crop_region": [40, 100, 520, 740],
        "no_crop": False,
        "imaging_area": {
            "source": "detected",
            "shape": "sector",
            "region": [40, 100, 520, 740],
            "confidence": 0.93,
            "blanked_rle": list(range(0, 120, 3)),
            "blanked_pixels": 1200,
        },
        "manufacturer": "Vendor",
        "device_model": "Model",
        "sex": "F",
        "age_band": "40-59",
        "site": "S1234",
        "study_date_shifted": "2019-03-02",
        "source_kind": "dicom",
        "ingested_at": "2026-11-30T12:00:00+00:00",
        "fingerprint": "dh1:" + "0" * 32,
    }


def json_upsert(root: Path, rec: dict) -> None:
    """The upsert of the JSON registry (before issue 16): read-merge-write of the whole file."""
    with ProjectLock(root):
        path = root / CLIPS_FILE
        clips = {c["clip_id"]: c for c in read_json(path, "clips")["clips"]}
        clips[rec["clip_id"]] = rec
        write_json(path, {"schema_version": 1, "clips": sorted(clips.values(), key=lambda c: c["clip_id"])}, "clips")


def run_size(n: int, tmp: Path, with_json: bool) -> dict:
    records = [record(i) for i in range(n)]
    project = Project.create(tmp / f"db{n}")
    t0 = time.perf_counter()
    for rec in records:
        project.upsert_clips([rec])
    upserts = time.perf_counter() - t0
    t0 = time.perf_counter()
    project.export_registry()
    export = time.perf_counter() - t0
    t0 = time.perf_counter()
    project.export_registry()  # a re-ingest that added nothing: compared, not rewritten
    reexport = time.perf_counter() - t0
    project.registry.close()
    (project.root / REGISTRY_FILE).unlink()  # now an old project: clips.json only
    t0 = time.perf_counter()
    Project.open(project.root).registry.close()
    migrate = time.perf_counter() - t0
    out = {
        "n": n,
        "upserts_s": upserts,
        "export_s": export,
        "reexport_s": reexport,
        "migrate_s": migrate,
        "json_s": None,
    }
    if with_json:
        root = tmp / f"json{n}"
        root.mkdir()
        (root / CLIPS_FILE).write_text(json.dumps({"schema_version": 1, "clips": []}))
        t0 = time.perf_counter()
        for rec in records:
            json_upsert(root, rec)
        out["json_s"] = time.perf_counter() - t0
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[200, 800, 2000])
    ap.add_argument(
        "--json-sizes",
        type=int,
        nargs="*",
        default=[50, 200],
        help="sizes for the JSON-registry baseline (quadratic: keep them small)",
    )
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sorted(set(args.sizes) | set(args.json_sizes)):
            rows.append(run_size(n, Path(tmp), n in args.json_sizes))
            r = rows[-1]
            json_part = (
                ""
                if r["json_s"] is None
                else f"; JSON registry {r['json_s']:.2f} s ({1e3 * r['json_s'] / n:.2f} ms/clip)"
            )
            print(
                f"{n:6d} clips: upserts {r['upserts_s']:.2f} s ({1e3 * r['upserts_s'] / n:.2f} ms/clip), "
                f"export {r['export_s']:.3f} s (unchanged: {r['reexport_s']:.3f} s), conversion of an old project {r['migrate_s']:.3f} s{json_part}",
                flush=True,
            )
    print("growth (linear: time ratio = clip ratio):")
    for a, b in zip(rows, rows[1:]):
        print(
            f"  {a['n']} -> {b['n']} clips (x{b['n'] / a['n']:.1f}): registry upserts "
            f"x{b['upserts_s'] / a['upserts_s']:.2f}"
        )
    timed = [r for r in rows if r["json_s"]]
    for a, b in zip(timed, timed[1:]):
        print(
            f"  {a['n']} -> {b['n']} clips (x{b['n'] / a['n']:.1f}): JSON registry (before) "
            f"x{b['json_s'] / a['json_s']:.2f}"
        )


if __name__ == "__main__":
    main()
