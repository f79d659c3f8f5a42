"""Issue 14: smart-keyframe proposals on phantom frames (Dice to the truth and time per proposal).

One click at the nerve's centroid, then one corrective click (the simulated rater clicks the
larger error: missed nerve -> positive, spurious mask -> negative), per plane; the same with a
model-like prior (the truth blurred, shifted 0.5 mm and noised, standing in for a coarse model);
and the time per proposal at 256x320 and 600x800 against a baseline in the same run (a 5x5 median
filter of the frame). Target: <= 0.2 s per proposal on 2 cores. Run: ``python3
benchmarks/bench_smart_keyframe.py [--seeds N]``.
"""

import argparse
import statistics

import numpy as np
from scipy import ndimage as ndi
from timing import median_time

from napari_ultramn import DEFAULT_PLANES
from napari_ultramn.annotation.smart_keyframe import corrective_click, propose_mask
from napari_ultramn.metrics import dice
from napari_ultramn.phantom import generate_clip


def coarse_prior(mask: np.ndarray, spacing_mm, rng) -> np.ndarray:
    """A model-like probability map: the truth blurred, shifted by 0.5 mm, with smooth noise."""
    shift = 0.5 / spacing_mm[0]
    p = ndi.shift(ndi.gaussian_filter(mask.astype(np.float32), 3.0), (shift, -shift), order=1)
    return (p + ndi.gaussian_filter(rng.normal(0, 0.6, mask.shape), 4.0)).clip(0, 1)


def frames(seeds: int, size=(256, 320)):
    for plane in DEFAULT_PLANES:
        for seed in range(seeds):
            clip = generate_clip(plane, seed, n_frames=12, size=size)
            for t in (2, 9):
                if clip.plane_labels[t] == plane:  # in plane: the rim is visible
                    yield plane, clip.frames[t], clip.masks[t], clip.spacing_mm


def run(seeds: int) -> None:
    rng = np.random.default_rng(0)
    rows: dict[str, dict[str, list]] = {}
    for plane, frame, truth, sp in frames(seeds):
        centre = tuple(int(v) for v in np.argwhere(truth).mean(0).round())
        if not truth[centre]:  # a bent band: click its pixel nearest the centroid
            inside = np.argwhere(truth)
            centre = tuple(int(v) for v in inside[np.argmin(((inside - centre) ** 2).sum(1))])
        r = rows.setdefault(plane, {k: [] for k in ("one", "two", "prior", "prior_two")})
        for key, prior in (("one", None), ("prior", coarse_prior(truth, sp, rng))):
            first = propose_mask(frame, [centre], spacing_mm=sp, prior=prior)
            r[key].append(dice(first, truth))
            click = corrective_click(first, truth)
            pos, neg = [centre], []
            if click is not None:
                (pos if click[1] else neg).append(click[0])
            second = propose_mask(frame, pos, neg, spacing_mm=sp, prior=prior)
            r["two" if key == "one" else "prior_two"].append(dice(second, truth))
    print(f"median Dice to the truth ({seeds} seeds x 2 frames per plane, 256x320)")
    print(f"{'plane':22s} {'n':>3s} {'1 click':>8s} {'+1 click':>9s} {'prior 1':>8s} {'prior +1':>9s}")
    for plane, r in list(rows.items()) + [
        ("all", {k: sum((v[k] for v in rows.values()), []) for k in rows[DEFAULT_PLANES[0]]})
    ]:
        med = {k: statistics.median(v) for k, v in r.items()}
        print(
            f"{plane:22s} {len(r['one']):3d} {med['one']:8.3f} {med['two']:9.3f} {med['prior']:8.3f} {med['prior_two']:9.3f}"
        )

    for size in ((256, 320), (600, 800)):
        timing(size)


def timing(size) -> None:
    clip = generate_clip("transverse_wrist", 1, n_frames=3, size=size)
    frame, truth, sp = clip.frames[1], clip.masks[1], clip.spacing_mm
    centre = tuple(int(v) for v in np.argwhere(truth).mean(0).round())
    three = ([centre, (centre[0], centre[1] + 5)], [(centre[0] - 60, centre[1])])
    t_one = median_time(lambda: propose_mask(frame, [centre], spacing_mm=sp), 15)
    t_three = median_time(lambda: propose_mask(frame, *three, spacing_mm=sp), 15)
    t_unc = median_time(lambda: propose_mask(frame, [centre]), 15)
    prior = coarse_prior(truth, sp, np.random.default_rng(0))
    t_prior = median_time(lambda: propose_mask(frame, *three, spacing_mm=sp, prior=prior), 15)
    t_base = median_time(lambda: ndi.median_filter(frame, 5), 5)
    print(
        f"{size[0]}x{size[1]}: proposal {t_one * 1e3:.1f} ms (3 clicks {t_three * 1e3:.1f} ms, uncalibrated "
        f"{t_unc * 1e3:.1f} ms, 3 clicks with a prior {t_prior * 1e3:.1f} ms); baseline 5x5 median filter of the frame {t_base * 1e3:.1f} ms; target <= 200 ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    run(parser.parse_args().seeds)
