"""Near-duplicate clips across participants (issue 13): recall per transform, false pairs, time.

A phantom study (``napari_ultramn.phantom.write_study``: real multi-frame DICOM files, both sides x
four planes per participant, left arms mirrored) is read the way ingest reads it (cropped to the
imaging region). Some clips are then copied under new participant ids, each copy through one
transform a re-export could apply: +1 grey level, +-10 % gain, a 1-3 px shift, a 2-5 % crop, JPEG
re-encoding at quality 75 (Pillow), H.264 re-encoding (PyAV, libx264 default quality, read back
through ``open_clip``) and a left-right mirror.

Printed: recall per transform (goal: every copy found), false pairs (clips of different origin
paired; goal 0), the distance distributions that justify ``DUPLICATE_DISTANCE`` (largest copy
distance vs smallest distance between distinct participants, same plane), fingerprint time per
clip. Asserts nothing. ``python3 benchmarks/bench_duplicates.py [--participants 12] [--sector]``
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset_tools.fingerprint import (  # noqa: E402
    DUPLICATE_DISTANCE,
    clip_fingerprint,
    distance_matrix,
    likely_duplicate_pairs,
    parse_fingerprint,
)


def plus_one(frames, rng):
    return np.clip(frames.astype(np.int16) + 1, 0, 255).astype(np.uint8)


def gain(factor):
    def apply(frames, rng):
        return np.clip(np.rint(frames * factor), 0, 255).astype(np.uint8)

    return apply


def shift(frames, rng):
    """Content moved by 1-3 px in both directions; the uncovered edge is black (a re-export offset)."""
    dy, dx = (int(rng.integers(1, 4)) * int(rng.choice([-1, 1])) for _ in range(2))
    out = np.zeros_like(frames)
    h, w = frames.shape[1:]
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = frames[
        :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def crop(frames, rng):
    """2-5 % cut from each edge, independently."""
    h, w = frames.shape[1:]
    t, b, lft, r = (int(round(rng.uniform(0.02, 0.05) * n)) for n in (h, h, w, w))
    return np.ascontiguousarray(frames[:, t : h - b, lft : w - r])


def jpeg75(frames, rng):
    from PIL import Image

    out = []
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="JPEG", quality=75)
        out.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L")))
    return np.stack(out)


def h264(frames, rng):
    """Encode with libx264 at its default quality (crf 23) and read back with the project's reader."""
    import av

    from napari_ultramn.io import open_clip

    t, h, w = frames.shape
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reencoded.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
            for f in frames:
                rgb = np.repeat(f[: h - h % 2, : w - w % 2, None], 3, axis=-1)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
            container.mux(stream.encode())
        return open_clip(path).to_array()


def mirror(frames, rng):
    return np.ascontiguousarray(frames[:, :, ::-1])


TRANSFORMS = {
    "+1 intensity": plus_one,
    "gain x1.1": gain(1.1),
    "gain x0.9": gain(0.9),
    "shift 1-3 px": shift,
    "crop 2-5 %": crop,
    "JPEG q=75": jpeg75,
    "H.264": h264,
    "mirror": mirror,
}


def sector(frames: np.ndarray) -> np.ndarray:
    """Blank outside a 60-degree fan, as ingest does for a sector probe (every clip the same fan)."""
    h, w = frames.shape[1:]
    rows, cols = np.mgrid[0:h, 0:w]
    apex = -0.15 * h
    radius, angle = np.hypot(cols - w / 2, rows - apex), np.degrees(np.arctan2(cols - w / 2, rows - apex))
    keep = (np.abs(angle) < 30) & (radius > 0.25 * h) & (radius < 1.1 * h)
    return frames * keep


def read_study(folder: Path, participants: int, n_frames: int, seed: int) -> list[dict]:
    """Write the phantom study and read every clip as ingest does (cropped to the imaging region)."""
    from napari_ultramn.io import open_clip
    from napari_ultramn.phantom.study import write_study
    from napari_ultramn.progress import run_to_end

    table = run_to_end(write_study(folder, participants, seed=seed, n_frames=n_frames))
    clips = []
    for row in table.itertuples():
        frames = open_clip(folder / row.file, crop_to_region=True).to_array()
        clips.append(
            {
                "clip_id": f"{row.patient_id}-{row.side}-{row.plane}",
                "participant": row.patient_id,
                "plane": row.plane,
                "side": row.side,
                "frames": frames,
            }
        )
    return clips


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=12)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--copies", type=int, default=6, help="copies made per transform")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--sector",
        action="store_true",
        help="blank every clip outside one shared fan first (sector probes: the shared "
        "static outline must not make distinct participants look alike)",
    )
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        originals = read_study(Path(tmp) / "study", args.participants, args.frames, args.seed)
        if args.sector:
            originals = [{**r, "frames": sector(r["frames"])} for r in originals]
        print(
            f"phantom study{' (sector)' if args.sector else ''}: {args.participants} participants, "
            f"{len(originals)} clips of "
            f"{originals[0]['frames'].shape} ({time.perf_counter() - t0:.0f} s to write and read)"
        )
        copies = []
        for name, transform in TRANSFORMS.items():
            for k, i in enumerate(rng.choice(len(originals), args.copies, replace=False)):
                src = originals[i]
                frames = transform(src["frames"], rng)
                copies.append(
                    {
                        **src,
                        "clip_id": f"copy{len(copies)}",
                        "participant": f"COPY-{name}-{k}",
                        "frames": frames,
                        "origin": src["clip_id"],
                        "transform": name,
                    }
                )
        times = []
        for rec in originals + copies:
            t0 = time.perf_counter()
            rec["fingerprint"] = clip_fingerprint(rec["frames"])
            times.append(time.perf_counter() - t0)
        records = [{k: v for k, v in r.items() if k != "frames"} for r in originals + copies]
    origin = {r["clip_id"]: r.get("origin", r["clip_id"]) for r in records}
    t0 = time.perf_counter()
    pairs = likely_duplicate_pairs(records)
    t_pairs = time.perf_counter() - t0
    found = {(p.clip_a, p.clip_b) for p in pairs} | {(p.clip_b, p.clip_a) for p in pairs}
    false = [p for p in pairs if origin[p.clip_a] != origin[p.clip_b]]

    prints = [parse_fingerprint(r["fingerprint"]) for r in records]
    d = distance_matrix(prints)
    index = {r["clip_id"]: i for i, r in enumerate(records)}
    print(f"\nthreshold DUPLICATE_DISTANCE = {DUPLICATE_DISTANCE}")
    print(f"{'transform':<14} recall   copy distance (max)")
    per = defaultdict(list)
    for c in copies:
        per[c["transform"]].append(((c["clip_id"], c["origin"]) in found, d[index[c["clip_id"]], index[c["origin"]]]))
    for name in TRANSFORMS:
        hits = [h for h, _ in per[name]]
        print(f"{name:<14} {sum(hits)}/{len(hits)}    {max(x for _, x in per[name]):.3f}")
    orig = [r for r in records if "origin" not in r]
    same_plane, other_plane, same_person = [], [], []
    for i, a in enumerate(orig):
        for b in orig[i + 1 :]:
            x = d[index[a["clip_id"]], index[b["clip_id"]]]
            if a["participant"] == b["participant"]:
                same_person.append(x)
            else:
                (same_plane if a["plane"] == b["plane"] else other_plane).append(x)
    for label, xs in (
        ("distinct participants, same plane", same_plane),
        ("distinct participants, other plane", other_plane),
        ("same participant, other clip", same_person),
    ):
        xs = np.asarray(xs)
        print(
            f"{label:<36} min {xs.min():.3f}  1st pct {np.percentile(xs, 1):.3f}  median "
            f"{np.median(xs):.3f}  ({len(xs)} pairs)"
        )
    print(
        f"false pairs (different origin, distance < threshold): {len(false)}" + "".join(f"\n  {p}" for p in false[:10])
    )
    print(
        f"fingerprint time per clip: median {1000 * np.median(times):.1f} ms "
        f"({args.frames} frames of {originals[0]['frames'].shape[1:]}; reads only the sampled frames)"
    )
    n = len(records)
    print(
        f"likely_duplicate_pairs over {n} clips: {t_pairs:.2f} s "
        f"({1e6 * t_pairs / (n * (n - 1) / 2):.1f} us per clip pair)"
    )


if __name__ == "__main__":
    main()
