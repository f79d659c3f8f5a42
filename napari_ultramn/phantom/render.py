"""B-mode physics of the phantom: speckle from a point-spread function, envelope, log compression.

The image model is the classic one for fully developed speckle: tissue is a field of random
sub-resolution scatterers whose variance is the local *echogenicity* ``E``; the scanner convolves
the scatterers with its point-spread function (axially a cosine-modulated Gaussian pulse,
laterally a Gaussian beam), detects the envelope of the RF signal (``|hilbert(rf)|`` along depth)
and log-compresses it into a display dynamic range. The envelope of such a field is Rayleigh
distributed (mean/std ~ 1.91), which is what makes the images look like ultrasound and not like
smoothed noise.

Everything expensive here runs once per clip on a static canvas; the per-frame renderer in
:mod:`napari_ultramn.phantom.generate` only crops, mixes and compresses.
"""

from __future__ import annotations

import functools

import numpy as np

#: Display dynamic range and the power (dB re. echogenicity 1) shown as black.
DYNAMIC_RANGE_DB = 42.0
FLOOR_DB = -26.0


def psf_kernel(
    axial_sigma_px: float = 1.3,
    carrier_period_px: float = 3.6,
    lateral_sigma_px: float = 2.2,
) -> np.ndarray:
    """Analytic point-spread function ``(rows=depth, cols=lateral) complex64``, unit energy.

    Axially the transmitted pulse: a Gaussian envelope on a carrier, written as the complex
    carrier ``exp(2 pi i z / period)`` whose real part is the cosine-modulated Gaussian RF pulse
    and whose imaginary part is its quadrature (Hilbert) partner. Laterally a Gaussian beam,
    wider than the pulse as in any linear array. Convolving scatterers with it yields the RF
    image and its quadrature at once, so ``|.|`` is the detected envelope; unlike a Hilbert
    transform of the whole RF image it has no long tails below bright reflectors. The carrier
    period is 3-4 pixels so the RF would be sampled without aliasing.
    """
    ra = int(np.ceil(3.5 * axial_sigma_px))
    rl = int(np.ceil(3.0 * lateral_sigma_px))
    z = np.arange(-ra, ra + 1, dtype=np.float64)
    x = np.arange(-rl, rl + 1, dtype=np.float64)
    axial = np.exp(-0.5 * (z / axial_sigma_px) ** 2) * np.exp(2j * np.pi * z / carrier_period_px)
    lateral = np.exp(-0.5 * (x / lateral_sigma_px) ** 2)
    k = np.outer(axial, lateral)
    return (k / np.sqrt((np.abs(k) ** 2).sum())).astype(np.complex64)


def analytic_speckle(echogenicity: np.ndarray, rng: np.random.Generator, psf: np.ndarray | None = None) -> np.ndarray:
    """Complex analytic RF signal ``(H, W) complex64`` of tissue with the given echogenicity.

    Scatterer amplitudes are real Gaussian with variance ``echogenicity``; the signal is their
    (linear, not circular) convolution with the analytic ``psf``: one FFT product. Scaled so a
    homogeneous region of echogenicity 1 has mean envelope power 1; the envelope there is
    Rayleigh distributed.
    """
    from scipy import fft

    psf = psf_kernel() if psf is None else psf
    e = np.asarray(echogenicity, dtype=np.float32)
    scatterers = rng.standard_normal(e.shape, dtype=np.float32) * np.sqrt(np.maximum(e, 0))
    ph, pw = psf.shape
    shape = (fft.next_fast_len(e.shape[0] + ph - 1), fft.next_fast_len(e.shape[1] + pw - 1))
    spec = fft.fft2(scatterers, shape)
    spec *= _psf_spectrum(psf.tobytes(), psf.shape, shape)
    out = fft.ifft2(spec, overwrite_x=True)
    out = out[ph // 2 : ph // 2 + e.shape[0], pw // 2 : pw // 2 + e.shape[1]]
    # Unit-energy analytic PSF on real unit-variance scatterers: mean power 1.
    return np.ascontiguousarray(out, dtype=np.complex64)


@functools.lru_cache(maxsize=8)
def _psf_spectrum(psf_bytes: bytes, psf_shape: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """FFT of the PSF zero-padded to ``shape``; cached because every field of a clip reuses it."""
    from scipy import fft

    psf = np.frombuffer(psf_bytes, dtype=np.complex64).reshape(psf_shape)
    return fft.fft2(psf, shape).astype(np.complex64)


def power(field: np.ndarray) -> np.ndarray:
    """Envelope power ``|s|^2`` (float32) of an analytic field."""
    return field.real * field.real + field.imag * field.imag


#: Power scale that puts FLOOR_DB at 0 dB, so grey = GREY_PER_DECADE * log10(PRESCALE * power).
PRESCALE = float(10 ** (-FLOOR_DB / 10))
GREY_PER_DECADE = 10.0 * 255.0 / DYNAMIC_RANGE_DB


def log_compress(power_lin: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Map envelope power to display grey levels ``uint8``: dB, clipped to the dynamic range."""
    return grey_from_prescaled(np.asarray(power_lin, np.float32) * np.float32(PRESCALE), out)


def grey_from_prescaled(p: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """:func:`log_compress` of ``p = PRESCALE * power`` (float32, overwritten): the per-frame
    renderer folds PRESCALE into its gain so compression is log, multiply, clip, cast."""
    np.maximum(p, np.float32(1e-12), out=p)
    np.log10(p, out=p)
    p *= np.float32(GREY_PER_DECADE)
    np.clip(p, 0, 255, out=p)
    if out is None:
        return p.astype(np.uint8)
    out[...] = p
    return out


@functools.lru_cache(maxsize=32)
def _gaussian_transfer(shape: tuple[int, int], sigma: tuple[float, float]) -> np.ndarray:
    from scipy import fft

    fy = fft.fftfreq(shape[0]).astype(np.float32)[:, None]
    fx = fft.rfftfreq(shape[1]).astype(np.float32)[None, :]
    return np.exp(-2 * np.pi**2 * ((sigma[0] * fy) ** 2 + (sigma[1] * fx) ** 2)).astype(np.float32)


def smooth_noise(shape: tuple[int, int], rng: np.random.Generator, sigma: tuple[float, float]) -> np.ndarray:
    """Zero-mean, unit-std Gaussian-filtered noise ``(H, W) float32`` (periodic).

    Synthesised directly in the Fourier domain (complex white noise times the Gaussian's
    transfer function, one inverse FFT), so long streaks (large anisotropic sigma) cost the same
    as short ones.
    """
    from scipy import fft

    shape = (int(shape[0]), int(shape[1]))
    transfer = _gaussian_transfer(shape, (float(sigma[0]), float(sigma[1])))
    spec = rng.standard_normal((*transfer.shape, 2), dtype=np.float32).view(np.complex64)[..., 0]
    spec *= transfer
    spec[0, 0] = 0  # zero mean
    n = fft.irfft2(spec, shape, overwrite_x=True)
    n *= np.float32(1.0 / (float(np.sqrt(np.mean(n * n))) + 1e-12))
    return n


def smooth_curve(n: int, rng: np.random.Generator, n_modes: int = 3) -> np.ndarray:
    """A smooth random 1D profile of length ``n`` in roughly [-1, 1] (sum of low-order sines)."""
    s = np.linspace(0, 1, n, dtype=np.float32)
    out = np.zeros(n, np.float32)
    for k in range(1, n_modes + 1):
        out += rng.normal(0, 1 / k) * np.sin(np.pi * k * s + rng.uniform(0, 2 * np.pi))
    return out / max(1e-6, float(np.abs(out).max()))
