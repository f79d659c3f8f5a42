"""Phantom clips: determinism, shapes, anatomy per plane, speckle statistics, degraded frames."""

import numpy as np
import pytest

from napari_ultramn import DEFAULT_PLANES, NON_STANDARD
from napari_ultramn.errors import InputError
from napari_ultramn.phantom import PhantomClip, generate_clip
from napari_ultramn.phantom.render import analytic_speckle, log_compress, power, psf_kernel


@pytest.fixture(scope="module")
def clips():
    return {p: generate_clip(p, seed=3, n_frames=20, size=(128, 144)) for p in DEFAULT_PLANES}


def _mask_geometry(mask):
    """Width/height (pixels) of the mask's bounding box and the aspect ratio of its 2nd moments."""
    rr, cc = np.nonzero(mask)
    cov = np.cov(np.stack([rr, cc]).astype(float))
    ev = np.sort(np.linalg.eigvalsh(cov))
    return cc.max() - cc.min() + 1, rr.max() - rr.min() + 1, np.sqrt(ev[1] / ev[0])


def test_same_seed_same_clip_and_different_seed_different_clip():
    a = generate_clip("transverse_wrist", seed=5, n_frames=6, size=(64, 64))
    b = generate_clip("transverse_wrist", seed=5, n_frames=6, size=(64, 64))
    c = generate_clip("transverse_wrist", seed=6, n_frames=6, size=(64, 64))
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.masks, b.masks)
    assert a.plane_labels == b.plane_labels and a.quality == b.quality
    assert not np.array_equal(a.frames, c.frames)


@pytest.mark.parametrize("plane", DEFAULT_PLANES)
def test_shapes_dtypes_and_metadata(clips, plane):
    clip = clips[plane]
    assert isinstance(clip, PhantomClip) and clip.plane == plane
    assert clip.frames.shape == clip.masks.shape == (20, 128, 144)
    assert clip.frames.dtype == np.uint8 and clip.masks.dtype == bool
    assert len(clip.plane_labels) == len(clip.quality) == 20
    assert set(clip.plane_labels) <= {plane, NON_STANDARD} and plane in clip.plane_labels
    assert set(clip.quality) <= {"ok", "poor"}
    assert clip.spacing_mm[0] == clip.spacing_mm[1] and 0.05 < clip.spacing_mm[0] < 0.5
    assert 30 <= clip.frame_time_ms <= 50
    # the nerve is in view on every frame and never touches the top or bottom of the image
    areas = clip.masks.sum(axis=(1, 2))
    assert (areas > 20).all()
    assert not clip.masks[:, 0].any() and not clip.masks[:, -1].any()
    # the image is not saturated or empty
    assert 30 < clip.frames.mean() < 160


@pytest.mark.parametrize("plane", ["transverse_wrist", "transverse_forearm"])
def test_transverse_nerve_is_a_modest_oval(clips, plane):
    w, h, aspect = _mask_geometry(clips[plane].masks[0])
    assert w < 0.5 * 144 and h < 0.5 * 128
    assert 1.0 <= aspect < 4.0
    if plane == "transverse_wrist":  # flattened and superficial at the wrist, rounder and deeper in the forearm
        forearm = clips["transverse_forearm"]
        assert aspect > _mask_geometry(forearm.masks[0])[2]

        def depth_mm(clip):
            return np.nonzero(clip.masks[0])[0].mean() * clip.spacing_mm[0]

        assert depth_mm(clips[plane]) + 3 < depth_mm(forearm)


@pytest.mark.parametrize("plane", ["longitudinal_wrist", "longitudinal_forearm"])
def test_longitudinal_nerve_is_a_band_across_the_image(clips, plane):
    w, h, aspect = _mask_geometry(clips[plane].masks[0])
    assert w >= 0.7 * 144 and h < 0.35 * 128 and aspect > 5


def test_the_nerve_moves_and_deforms_smoothly(clips):
    for plane in DEFAULT_PLANES:
        masks = clips[plane].masks
        changed = [(masks[t] ^ masks[t + 1]).sum() for t in range(len(masks) - 1)]
        assert max(changed) > 0, plane  # it moves ...
        assert max(changed) < 0.6 * masks[0].sum(), plane  # ... but without jumps


def test_nerve_is_distinct_from_its_surroundings(clips):
    """The epineurial rim is brighter than the fascicular interior (honeycomb texture)."""
    from scipy import ndimage

    clip = clips["transverse_wrist"]
    rim, inner = [], []
    for t in range(clip.n_frames):
        if clip.quality[t] != "ok" or clip.plane_labels[t] != "transverse_wrist":
            continue
        m = clip.masks[t]
        core = ndimage.binary_erosion(m, iterations=3)
        rim.append(clip.frames[t][m & ~core].mean())
        inner.append(clip.frames[t][core].mean())
    assert np.mean(rim) > np.mean(inner) + 5


def test_speckle_envelope_is_rayleigh():
    """Homogeneous tissue: envelope SNR mean/std = 1.91 and log-envelope std = 5.57 dB (Rayleigh)."""
    rng = np.random.default_rng(0)
    field = analytic_speckle(np.ones((256, 256), np.float32), rng, psf_kernel())[16:-16, 16:-16]
    env = np.abs(field)
    assert env.mean() / env.std() == pytest.approx(1.91, abs=0.1)
    assert power(field).mean() == pytest.approx(1.0, rel=0.1)
    assert np.std(10 * np.log10(power(field))) == pytest.approx(5.57, abs=0.3)
    img = log_compress(power(field))
    assert img.dtype == np.uint8 and 0 < img.mean() < 255


def test_speckle_is_correlated_over_a_few_pixels_and_longer_laterally():
    field = analytic_speckle(np.ones((128, 128), np.float32), np.random.default_rng(1))
    p = power(field) - power(field).mean()

    def corr(dy, dx):
        a = p[16:112, 16:112]
        b = p[16 + dy : 112 + dy, 16 + dx : 112 + dx]
        return float((a * b).mean() / (a.std() * b.std()))

    assert corr(0, 1) > 0.5 and corr(0, 12) < 0.1
    assert corr(0, 2) > corr(2, 0)  # lateral resolution is worse than axial


@pytest.mark.parametrize("fraction,n_frames", [(0.1, 30), (0.25, 24), (0.0, 16)])
def test_degraded_frames_at_the_requested_fraction(fraction, n_frames):
    clip = generate_clip("longitudinal_forearm", seed=11, n_frames=n_frames, size=(64, 96), degraded_fraction=fraction)
    poor = [i for i, q in enumerate(clip.quality) if q == "poor"]
    assert len(poor) == round(fraction * n_frames)
    assert all(clip.degradation[i] in ("noise", "dropout", "shadow") for i in poor)
    assert all(clip.degradation[i] is None for i in range(n_frames) if i not in poor)


def test_each_degradation_darkens_or_disturbs_the_frame():
    """Dropout and shadow darken a band of columns; noise fills the dark areas (bone shadow) with grain."""
    from scipy import ndimage

    kinds = {}
    for seed in range(12):
        clip = generate_clip(
            "transverse_forearm",
            seed=seed,
            n_frames=12,
            size=(64, 64),
            degraded_fraction=0.25,
            out_of_plane_probability=0.0,
        )
        ref = clip.frames[[i for i, d in enumerate(clip.degradation) if d is None]].astype(float).mean(0)
        ref_profile = ndimage.uniform_filter1d(ref[8:].mean(0), 3)
        for i, kind in enumerate(clip.degradation):
            frame = clip.frames[i].astype(float)
            darkest_band = ((ndimage.uniform_filter1d(frame[8:].mean(0), 3) + 1) / (ref_profile + 1)).min()
            kinds.setdefault(kind, []).append((darkest_band, np.percentile(frame, 10)))
        if len(kinds) == 4:
            break
    assert set(kinds) == {None, "noise", "dropout", "shadow"}
    assert min(d for d, _ in kinds[None]) > 0.65
    assert max(d for d, _ in kinds["dropout"]) < 0.4 and max(d for d, _ in kinds["shadow"]) < 0.6
    assert min(p for _, p in kinds["noise"]) > max(p for _, p in kinds[None]) + 5


def test_out_of_plane_runs_are_labelled_non_standard():
    clip = generate_clip("transverse_wrist", seed=1, n_frames=24, size=(64, 64), out_of_plane_probability=1.0)
    off = [i for i, lab in enumerate(clip.plane_labels) if lab == NON_STANDARD]
    assert len(off) == 3 and off in ([0, 1, 2], [21, 22, 23])
    assert clip.masks[off].any(axis=(1, 2)).all()  # the nerve is still there, just off-plane
    never = generate_clip("transverse_wrist", seed=1, n_frames=24, size=(64, 64), out_of_plane_probability=0.0)
    assert set(never.plane_labels) == {"transverse_wrist"}


def test_flipped_is_the_mirror_image():
    clip = generate_clip("transverse_wrist", seed=2, n_frames=3, size=(64, 80))
    flip = clip.flipped()
    np.testing.assert_array_equal(flip.frames[1], clip.frames[1][:, ::-1])
    np.testing.assert_array_equal(flip.masks[1], clip.masks[1][:, ::-1])


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"plane": "sagittal_elbow"}, "unknown plane 'sagittal_elbow'; expected one of transverse_wrist"),
        ({"n_frames": 0}, "need n_frames >= 1 and a size of at least 32x32, got 0 frames of 64x64"),
        ({"size": (16, 64)}, "at least 32x32, got 4 frames of 16x64"),
        ({"degraded_fraction": 1.5}, "degraded_fraction must be in \\[0, 1\\], got 1.5"),
    ],
)
def test_bad_arguments_are_refused_with_a_clear_message(kwargs, message):
    args = {"plane": "transverse_wrist", "seed": 0, "n_frames": 4, "size": (64, 64), **kwargs}
    with pytest.raises(InputError, match=message):
        generate_clip(**args)


def test_generating_a_clip_never_imports_torch():
    import subprocess
    import sys

    code = (
        "import sys; from napari_ultramn.phantom import generate_clip; "
        "generate_clip('transverse_wrist', 0, 2, (64, 64)); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
