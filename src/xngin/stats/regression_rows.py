"""Per-participant rows for the arm regression, and the per-cell sums they are reduced to.

Rows arrive whole or in chunks (a warehouse cursor); :class:`CellSums` keeps only per-cell
(arm x stratum) sums and covariate cross-products, so memory does not grow with the audience.
The regression itself is in :mod:`xngin.stats.regression`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xngin.stats.errors import StatsInputError

__all__ = ["CellSums", "Matrix", "ParticipantRows", "RowSource", "Vector", "iterate_chunks"]

Vector = NDArray[np.float64]
Matrix = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class ParticipantRows:
    """One chunk of per-participant rows (or all of them).

    Parameters
    ----------
    outcome : array of float, shape (n,)
        The metric per participant; finite.
    arm : array of int, shape (n,)
        Arm index per participant, ``0 <= arm < n_arms``.
    stratum : array of int, shape (n,), optional
        Stratum index per participant, >= 0, for strata fixed effects.
    covariates : array of float, shape (n, p), optional
        Pre-treatment covariates (a 1-D array is one covariate).
    """

    outcome: Vector
    arm: NDArray[np.intp]
    stratum: NDArray[np.intp] | None = None
    covariates: Matrix | None = None

    def __init__(
        self,
        outcome: ArrayLike,
        arm: ArrayLike,
        stratum: ArrayLike | None = None,
        covariates: ArrayLike | None = None,
    ) -> None:
        y = np.asarray(outcome, dtype=np.float64)
        if y.ndim != 1 or not np.all(np.isfinite(y)):
            raise StatsInputError(
                "outcome must be a one-dimensional array of finite numbers", field="outcome"
            )
        arms = _index_array(arm, "arm", y.size)
        strata = None if stratum is None else _index_array(stratum, "stratum", y.size)
        z = None
        if covariates is not None:
            z = np.asarray(covariates, dtype=np.float64)
            if z.ndim == 1:
                z = z[:, None]
            if z.ndim != 2 or z.shape[0] != y.size or not np.all(np.isfinite(z)):
                raise StatsInputError(
                    f"covariates must be finite with one row per participant ({y.size}), "
                    f"got shape {z.shape}",
                    field="covariates",
                )
        object.__setattr__(self, "outcome", y)
        object.__setattr__(self, "arm", arms)
        object.__setattr__(self, "stratum", strata)
        object.__setattr__(self, "covariates", z)


def _index_array(values: ArrayLike, name: str, size: int) -> NDArray[np.intp]:
    array = np.asarray(values)
    if array.shape != (size,) or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise StatsInputError(
            f"{name} must hold one whole-number index per participant ({size}), "
            f"got shape {array.shape} of {array.dtype}",
            field=name,
        )
    if array.size and array.min() < 0:
        raise StatsInputError(f"{name} indices must be >= 0, got {array.min()}", field=name)
    return array.astype(np.intp)


RowSource = ParticipantRows | Sequence[ParticipantRows] | Callable[[], Iterable[ParticipantRows]]


@dataclass
class CellSums:
    """Pass-one and pass-two accumulators over cells ``stratum * n_arms + arm``."""

    n_arms: int
    n_covariates: int | None = None
    count: Vector = field(default_factory=lambda: np.zeros(0))
    sum_y: Vector = field(default_factory=lambda: np.zeros(0))
    sum_y_sq: Vector = field(default_factory=lambda: np.zeros(0))
    sum_z: Matrix = field(default_factory=lambda: np.zeros((0, 0)))
    ztz: Matrix = field(default_factory=lambda: np.zeros((0, 0)))
    zty: Vector = field(default_factory=lambda: np.zeros(0))
    sum_e_sq: Vector = field(default_factory=lambda: np.zeros(0))
    sum_e_sq_z: Matrix = field(default_factory=lambda: np.zeros((0, 0)))
    zt_e_sq_z: Matrix = field(default_factory=lambda: np.zeros((0, 0)))

    def cells_of(self, rows: ParticipantRows) -> NDArray[np.intp]:
        if rows.arm.size and rows.arm.max() >= self.n_arms:
            raise StatsInputError(
                f"arm index {rows.arm.max()} is outside 0..{self.n_arms - 1}", field="arm"
            )
        p = 0 if rows.covariates is None else rows.covariates.shape[1]
        if self.n_covariates is None:
            self.n_covariates = p
            self.sum_z = np.zeros((0, p))
            self.ztz, self.zty = np.zeros((p, p)), np.zeros(p)
            self.sum_e_sq_z, self.zt_e_sq_z = np.zeros((0, p)), np.zeros((p, p))
        elif p != self.n_covariates:
            raise StatsInputError(
                f"every chunk needs the same covariates; got {p} after {self.n_covariates}",
                field="covariates",
            )
        stratum = rows.stratum if rows.stratum is not None else np.zeros_like(rows.arm)
        cells = stratum * self.n_arms + rows.arm
        needed = int(cells.max()) + 1 if cells.size else 0
        if needed > self.count.size:
            self.grow(needed)
        return cells

    def grow(self, size: int) -> None:
        extra = size - self.count.size
        for name in ("count", "sum_y", "sum_y_sq", "sum_e_sq"):
            setattr(self, name, np.concatenate([getattr(self, name), np.zeros(extra)]))
        for name in ("sum_z", "sum_e_sq_z"):
            old = getattr(self, name)
            setattr(self, name, np.vstack([old, np.zeros((extra, old.shape[1]))]))

    def add_first_pass(self, rows: ParticipantRows) -> None:
        cells = self.cells_of(rows)
        size, y = self.count.size, rows.outcome
        self.count += np.bincount(cells, minlength=size)
        self.sum_y += np.bincount(cells, weights=y, minlength=size)
        self.sum_y_sq += np.bincount(cells, weights=y * y, minlength=size)
        if rows.covariates is not None and self.sum_z.shape[1]:
            z = rows.covariates
            for k in range(z.shape[1]):
                self.sum_z[:, k] += np.bincount(cells, weights=z[:, k], minlength=size)
            self.ztz += z.T @ z
            self.zty += z.T @ y

    def add_second_pass(self, rows: ParticipantRows, cell_fit: Vector, gamma: Vector) -> None:
        cells = self.cells_of(rows)
        if cells.size and int(cells.max()) >= cell_fit.size:
            raise StatsInputError(
                "the second pass over the chunks saw a stratum the first pass did not; the "
                "chunk source must yield the same rows each time",
                field="stratum",
            )
        z = rows.covariates
        assert z is not None
        e_sq = (rows.outcome - cell_fit[cells] - z @ gamma) ** 2
        size = self.count.size
        self.sum_e_sq += np.bincount(cells, weights=e_sq, minlength=size)
        for k in range(z.shape[1]):
            self.sum_e_sq_z[:, k] += np.bincount(cells, weights=e_sq * z[:, k], minlength=size)
        self.zt_e_sq_z += (z * e_sq[:, None]).T @ z


def iterate_chunks(rows: RowSource) -> Iterable[ParticipantRows]:
    if isinstance(rows, ParticipantRows):
        return (rows,)
    if callable(rows):
        return rows()
    return rows
