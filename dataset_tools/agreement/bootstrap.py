"""Percentile bootstrap over *participants* (the cluster bootstrap).

Frames of one clip, and clips of one participant, are not independent: resampling frames would
make intervals far too narrow. Each replicate draws participants with replacement and keeps all
their rows (Davison & Hinkley 1997, sec. 3.8). Seeded: the same ``seed`` gives the same draws for
every coefficient, so intervals are reproducible and comparable.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class ParticipantBootstrap:
    """Draws of participants shared by every coefficient of one report.

    ``participants``: one id per row of the data (frame, clip, ...). ``draws (B, P)`` holds the
    participant indices of each replicate; :meth:`rows` gives a replicate's row indices.
    """

    def __init__(self, participants, n_boot: int = 200, seed: int = 0):
        if n_boot < 0:
            raise ValueError(f"n_boot must be >= 0, got {n_boot}")
        self.ids, self.codes = np.unique(np.asarray(participants, dtype=object).astype(str), return_inverse=True)
        self.n_boot = int(n_boot)
        self.seed = seed
        rng = np.random.default_rng(seed)
        p = len(self.ids)
        self.draws = rng.integers(0, p, size=(self.n_boot, p)) if p else np.zeros((self.n_boot, 0), int)
        order = np.argsort(self.codes, kind="stable")
        bounds = np.searchsorted(self.codes[order], np.arange(p + 1))
        self._rows = [order[bounds[i] : bounds[i + 1]] for i in range(p)]

    @property
    def n_participants(self) -> int:
        return len(self.ids)

    def weights(self) -> np.ndarray:
        """``(B, P)`` how often each participant appears in each replicate."""
        w = np.zeros((self.n_boot, self.n_participants))
        for b in range(self.n_boot):
            np.add.at(w[b], self.draws[b], 1)
        return w

    def rows(self, b: int) -> np.ndarray:
        return np.concatenate([self._rows[i] for i in self.draws[b]]) if self.n_participants else np.array([], int)

    def subset(self, mask) -> ParticipantBootstrap:
        """The same draws restricted to rows where ``mask`` is True (e.g. one rater pair)."""
        sub = object.__new__(ParticipantBootstrap)
        sub.ids, sub.n_boot, sub.seed, sub.draws = self.ids, self.n_boot, self.seed, self.draws
        mask = np.asarray(mask, bool)
        where = np.flatnonzero(mask)
        remap = np.full(mask.size, -1)
        remap[where] = np.arange(where.size)
        sub.codes = self.codes[mask]
        sub._rows = [remap[r[mask[r]]] for r in self._rows]
        return sub

    # -- statistics --------------------------------------------------------------------------
    def mean_ci(self, values, alpha: float = 0.05) -> tuple[float, float, int]:
        """CI of the mean of ``values`` (one per row; NaN rows ignored) - vectorised."""
        if not self._usable():
            return float("nan"), float("nan"), 0
        v = np.asarray(values, float)
        ok = np.isfinite(v)
        sums = np.bincount(self.codes[ok], weights=v[ok], minlength=self.n_participants)
        counts = np.bincount(self.codes[ok], minlength=self.n_participants).astype(float)
        w = self.weights()
        with np.errstate(divide="ignore", invalid="ignore"):
            reps = (w @ sums) / (w @ counts)
        return percentile_ci(reps, alpha)

    def _usable(self) -> bool:
        # One participant resampled is always the same data: no interval at all, not a zero-width one.
        return self.n_participants >= 2 and self.n_boot > 0

    def ci(self, stat: Callable[..., float], alpha: float = 0.05) -> tuple[float, float, int]:
        """CI of ``stat(row_indices)``; replicates where the statistic is undefined are dropped
        and their number is reported (third value = valid replicates)."""
        if not self._usable():
            return float("nan"), float("nan"), 0
        reps = np.array([stat(self.rows(b)) for b in range(self.n_boot)], dtype=float)
        return percentile_ci(reps, alpha)

    def ci_many(self, stat: Callable[..., dict], alpha: float = 0.05) -> dict[str, tuple[float, float, int]]:
        """Like :meth:`ci` for a statistic returning several named coefficients at once."""
        reps: dict[str, list[float]] = {}
        if not self._usable():
            return {}
        for b in range(self.n_boot):
            for key, value in stat(self.rows(b)).items():
                reps.setdefault(key, []).append(value)
        return {k: percentile_ci(np.asarray(v, float), alpha) for k, v in reps.items()}


def percentile_ci(replicates, alpha: float = 0.05) -> tuple[float, float, int]:
    """``(low, high, n_valid)``: the alpha/2 and 1-alpha/2 percentiles of the finite replicates."""
    r = np.asarray(replicates, float)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return float("nan"), float("nan"), 0
    low, high = np.percentile(r, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high), int(r.size)
