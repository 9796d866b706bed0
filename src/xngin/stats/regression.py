"""OLS of a metric on arm indicators with HC1 robust errors, strata fixed effects and covariates.

The model is ``y = a + sum_j b_j [arm = j] + sum_s c_s [stratum = s] + z' g + e`` with the
baseline arm and the first non-empty stratum as reference levels. Standard errors are the
heteroskedasticity-consistent sandwich ``n / (n - K) (X'X)^-1 (sum_i e_i**2 x_i x_i') (X'X)^-1``
(HC1; MacKinnon & White 1985, J. Econometrics 29, eq. 2 with the degrees-of-freedom factor of
Hinkley 1977), tested against the normal distribution as statsmodels does for robust covariances.

Large audiences are handled without a dense design matrix. Arm and stratum indicators depend
only on the participant's cell (arm, stratum), so every sum involving them is a per-cell sum: the
rows contribute counts, ``sum y``, ``sum y**2`` and ``sum z`` per cell plus the dense ``Z'Z`` and
``Z'y`` of the covariates. That is pass one. The HC1 "meat" needs the residuals, so with
covariates a second pass over the same chunks accumulates ``sum e**2`` and ``sum e**2 z`` per cell
and ``Z' diag(e**2) Z``. Without covariates the fitted value is constant within a cell and
``sum_cell e**2 = sum y**2 - 2 f sum y + n f**2`` follows from pass one, so the regression needs
only per-cell ``MeanStats`` (a ``GROUP BY arm, stratum`` query), see
:func:`arm_regression_from_cells`.
Memory is O(cells x covariates + covariates**2), independent of the number of participants.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from xngin.stats.errors import StatsInputError
from xngin.stats.estimators import (
    EffectResult,
    check_alpha,
    critical_value,
    failed_effect,
    two_sided_p_value,
)
from xngin.stats.regression_rows import (
    CellSums,
    Matrix,
    ParticipantRows,
    RowSource,
    Vector,
    iterate_chunks,
)
from xngin.stats.sufficient import MeanStats

__all__ = [
    "ParticipantRows",
    "RegressionResult",
    "arm_regression",
    "arm_regression_from_cells",
]


@dataclass(frozen=True)
class RegressionResult:
    """The fitted regression and each treatment arm's effect against the baseline.

    Attributes
    ----------
    n : int
        Participants used.
    effects : tuple of EffectResult
        One per arm other than the baseline, in arm order. ``baseline_mean`` and
        ``treatment_mean`` are regression-adjusted: the average prediction had every participant
        been in that arm; ``effect_relative`` is the effect over the adjusted baseline mean with a
        delta-method interval from the full HC1 covariance.
    arm_n : tuple of int
        Participants per arm.
    column_names : tuple of str
        ``"intercept"``, ``"arm[j]"``, ``"stratum[s]"``, ``"covariate[k]"`` for the kept columns.
    coefficients : tuple of float
    covariance : tuple of tuple of float
        HC1 covariance of the coefficients.
    error_code, error_message : str or None
        Set when the model could not be fitted at all (then ``effects`` carry the same error).
    """

    n: int
    effects: tuple[EffectResult, ...]
    arm_n: tuple[int, ...]
    column_names: tuple[str, ...] = ()
    coefficients: tuple[float, ...] = ()
    covariance: tuple[tuple[float, ...], ...] = ()
    error_code: str | None = None
    error_message: str | None = None


def arm_regression(
    rows: RowSource, *, n_arms: int, baseline: int = 0, alpha: float = 0.05
) -> RegressionResult:
    """Fit OLS of outcome on arms (+ strata fixed effects, covariates) with HC1 errors.

    Equals statsmodels ``OLS(y, X).fit(cov_type="HC1")`` on the dense design described in the
    module docstring (z-based p-values and intervals).

    Parameters
    ----------
    rows : ParticipantRows, sequence of them, or a callable returning an iterable of them
        The participants. With covariates the chunks are read twice, so pass a sequence or a
        callable that re-opens the source (e.g. re-runs a query); a one-shot iterator is refused.
    n_arms : int
        Number of arms, >= 2; ``rows.arm`` indexes them.
    baseline : int
        The comparison arm, ``0 <= baseline < n_arms``.
    alpha : float
        Two-sided level in (0, 1).

    Returns
    -------
    RegressionResult
        Effects of every non-baseline arm; model-level ``error_code`` ``"singular_design"``
        (collinear covariates), ``"too_few_participants"``; arm-level error for an arm with
        fewer than 2 participants.
    """
    check_alpha(alpha)
    _check_arms(n_arms, baseline)
    if not isinstance(rows, ParticipantRows | Sequence) and not callable(rows):
        raise StatsInputError(
            "rows must be ParticipantRows, a sequence of them, or a callable that yields them "
            "afresh on each call (the chunks are read twice)",
            field="rows",
        )
    sums = CellSums(n_arms=n_arms)
    for chunk in iterate_chunks(rows):
        sums.add_first_pass(chunk)
    if not sums.n_covariates:
        return _fit(sums, baseline=baseline, alpha=alpha, covariate_pass=None)
    return _fit(sums, baseline=baseline, alpha=alpha, covariate_pass=lambda: iterate_chunks(rows))


def arm_regression_from_cells(
    cells: Mapping[tuple[int, int], MeanStats],
    *,
    n_arms: int,
    baseline: int = 0,
    alpha: float = 0.05,
) -> RegressionResult:
    """The same regression without covariates, from per-(arm, stratum) sufficient statistics.

    Parameters
    ----------
    cells : mapping of (arm index, stratum index) to MeanStats
        Outcome statistics per cell; use stratum 0 everywhere for no strata.
    n_arms, baseline, alpha
        As for :func:`arm_regression`.

    Returns
    -------
    RegressionResult
        Identical (to rounding) to :func:`arm_regression` on the underlying rows.
    """
    check_alpha(alpha)
    _check_arms(n_arms, baseline)
    sums = CellSums(n_arms=n_arms, n_covariates=0, sum_z=np.zeros((0, 0)))
    for (arm, stratum), stats in cells.items():
        if not (0 <= arm < n_arms) or stratum < 0:
            raise StatsInputError(
                f"cell ({arm}, {stratum}) needs 0 <= arm < {n_arms} and stratum >= 0",
                field="cells",
            )
        cell = stratum * n_arms + arm
        if cell >= sums.count.size:
            sums.grow(cell + 1)
        sums.count[cell] += stats.n
        sums.sum_y[cell] += stats.sum
        sums.sum_y_sq[cell] += stats.sum_sq
    return _fit(sums, baseline=baseline, alpha=alpha, covariate_pass=None)


def _check_arms(n_arms: int, baseline: int) -> None:
    if n_arms < 2:
        raise StatsInputError(f"n_arms must be at least 2, got {n_arms}", field="n_arms")
    if not 0 <= baseline < n_arms:
        raise StatsInputError(
            f"baseline must be an arm index in 0..{n_arms - 1}, got {baseline}", field="baseline"
        )


def _fit(
    sums: CellSums,
    *,
    baseline: int,
    alpha: float,
    covariate_pass: Callable[[], Iterable[ParticipantRows]] | None,
) -> RegressionResult:
    k = sums.n_arms
    n_strata = max(1, -(-sums.count.size // k))
    if sums.count.size < n_strata * k:
        sums.grow(n_strata * k)
    count = sums.count
    arm_n = count.reshape(n_strata, k).sum(axis=0).astype(int)
    stratum_n = count.reshape(n_strata, k).sum(axis=1)
    n = int(count.sum())
    p = sums.n_covariates or 0

    # Indicator columns per cell: intercept, non-empty non-baseline arms, non-empty strata after
    # the first non-empty one (empty levels would make X'X singular).
    arm_of_cell = np.tile(np.arange(k), n_strata)
    stratum_of_cell = np.repeat(np.arange(n_strata), k)
    names = ["intercept"]
    columns = [np.ones(n_strata * k)]
    arm_column: dict[int, int] = {}
    for arm in range(k):
        if arm != baseline and arm_n[arm] > 0:
            arm_column[arm] = len(columns)
            names.append(f"arm[{arm}]")
            columns.append((arm_of_cell == arm).astype(float))
    present = [s for s in range(n_strata) if stratum_n[s] > 0]
    for stratum in present[1:]:
        names.append(f"stratum[{stratum}]")
        columns.append((stratum_of_cell == stratum).astype(float))
    names += [f"covariate[{j}]" for j in range(p)]
    design = np.column_stack(columns)
    n_columns = len(names)

    def failed(code: str, message: str) -> RegressionResult:
        effects = tuple(
            failed_effect(
                method="ols_hc1",
                alpha=alpha,
                baseline_n=int(arm_n[baseline]),
                treatment_n=int(arm_n[arm]),
                code=code,
                message=message,
            )
            for arm in range(k)
            if arm != baseline
        )
        return RegressionResult(
            n=n,
            effects=effects,
            arm_n=tuple(int(a) for a in arm_n),
            error_code=code,
            error_message=message,
        )

    if arm_n[baseline] < 2 or n <= n_columns:
        return failed(
            "too_few_participants",
            f"the regression needs at least 2 baseline participants and more participants ({n}) "
            f"than coefficients ({n_columns})",
        )

    xtx = np.zeros((n_columns, n_columns))
    xty = np.zeros(n_columns)
    d = slice(0, n_columns - p)
    z = slice(n_columns - p, n_columns)
    xtx[d, d] = design.T @ (design * count[:, None])
    xty[d] = design.T @ sums.sum_y
    if p:
        xtx[d, z] = design.T @ sums.sum_z
        xtx[z, d] = xtx[d, z].T
        xtx[z, z] = sums.ztz
        xty[z] = sums.zty

    # Scale to unit diagonal before judging rank so covariates in large units are not mistaken
    # for collinear ones.
    scale = 1 / np.sqrt(np.diag(xtx))
    scaled = xtx * scale[:, None] * scale[None, :]
    if np.linalg.matrix_rank(scaled, tol=1e-10) < n_columns:
        return failed(
            "singular_design",
            "the covariates are collinear with each other or with the arms and strata; "
            "drop redundant covariates",
        )
    scaled_inverse = np.linalg.inv(scaled)
    xtx_inverse = scaled_inverse * scale[:, None] * scale[None, :]
    beta = xtx_inverse @ xty

    cell_fit = design @ beta[d]
    meat = np.zeros((n_columns, n_columns))
    if p:
        assert covariate_pass is not None
        gamma = beta[z]
        sums.sum_e_sq[:] = 0
        for chunk in covariate_pass():
            sums.add_second_pass(chunk, cell_fit, gamma)
        meat[d, d] = design.T @ (design * sums.sum_e_sq[:, None])
        meat[d, z] = design.T @ sums.sum_e_sq_z
        meat[z, d] = meat[d, z].T
        meat[z, z] = sums.zt_e_sq_z
    else:
        # Fitted values are constant within a cell: sum of squared residuals from the sums.
        e_sq = sums.sum_y_sq - 2 * cell_fit * sums.sum_y + count * cell_fit**2
        meat[d, d] = design.T @ (design * np.maximum(e_sq, 0.0)[:, None])
    covariance = n / (n - n_columns) * xtx_inverse @ meat @ xtx_inverse

    # Adjusted arm means average the prediction over everyone's strata and covariates:
    # c' beta with c = the column means of X and every arm indicator set to 0.
    centre = xtx[0] / n
    for column in arm_column.values():
        centre[column] = 0.0
    effects = tuple(
        _arm_effect(
            arm=arm,
            column=arm_column.get(arm),
            arm_n=arm_n,
            baseline=baseline,
            beta=beta,
            covariance=covariance,
            centre=centre,
            alpha=alpha,
        )
        for arm in range(k)
        if arm != baseline
    )
    return RegressionResult(
        n=n,
        effects=effects,
        arm_n=tuple(int(a) for a in arm_n),
        column_names=tuple(names),
        coefficients=tuple(float(b) for b in beta),
        covariance=tuple(tuple(float(v) for v in row) for row in covariance),
    )


def _arm_effect(
    *,
    arm: int,
    column: int | None,
    arm_n: NDArray[np.int_],
    baseline: int,
    beta: Vector,
    covariance: Matrix,
    centre: Vector,
    alpha: float,
) -> EffectResult:
    if column is None or arm_n[arm] < 2:
        return failed_effect(
            method="ols_hc1",
            alpha=alpha,
            baseline_n=int(arm_n[baseline]),
            treatment_n=int(arm_n[arm]),
            code="too_few_participants",
            message=f"arm {arm} has {int(arm_n[arm])} participants with a value; it needs 2",
        )
    effect = float(beta[column])
    variance = float(covariance[column, column])
    if variance <= 0:
        return failed_effect(
            method="ols_hc1",
            alpha=alpha,
            baseline_n=int(arm_n[baseline]),
            treatment_n=int(arm_n[arm]),
            code="zero_variance",
            message="the metric has no residual variation; there is nothing to test",
        )
    std_error = math.sqrt(variance)
    crit = critical_value(alpha, None)
    statistic = effect / std_error
    unit = np.zeros_like(centre)
    unit[column] = 1.0
    baseline_mean = float(centre @ beta)
    relative: dict[str, float | None] = dict.fromkeys(
        ("effect_relative", "std_error_relative", "ci_lower_relative", "ci_upper_relative")
    )
    notes: tuple[str, ...] = ()
    if baseline_mean != 0:
        # Delta method for b_j / (c' b): gradient e_j / m0 - b_j c / m0**2.
        gradient = unit / baseline_mean - effect * centre / baseline_mean**2
        se_relative = math.sqrt(max(0.0, float(gradient @ covariance @ gradient)))
        relative = {
            "effect_relative": effect / baseline_mean,
            "std_error_relative": se_relative,
            "ci_lower_relative": effect / baseline_mean - crit * se_relative,
            "ci_upper_relative": effect / baseline_mean + crit * se_relative,
        }
    else:
        notes = ("baseline mean is 0, so no relative effect is reported",)
    treatment_vector = centre + unit
    return EffectResult(
        method="ols_hc1",
        alpha=alpha,
        baseline_n=int(arm_n[baseline]),
        treatment_n=int(arm_n[arm]),
        baseline_mean=baseline_mean,
        treatment_mean=baseline_mean + effect,
        baseline_std_error=math.sqrt(max(0.0, float(centre @ covariance @ centre))),
        treatment_std_error=math.sqrt(
            max(0.0, float(treatment_vector @ covariance @ treatment_vector))
        ),
        effect=effect,
        std_error=std_error,
        ci_lower=effect - crit * std_error,
        ci_upper=effect + crit * std_error,
        statistic=statistic,
        p_value=two_sided_p_value(statistic, None),
        df=None,
        effect_relative=relative["effect_relative"],
        std_error_relative=relative["std_error_relative"],
        ci_lower_relative=relative["ci_lower_relative"],
        ci_upper_relative=relative["ci_upper_relative"],
        notes=notes,
    )
