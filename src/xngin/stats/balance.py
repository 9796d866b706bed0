"""Balance check: do the participants' covariates predict their arm?

The check is one joint test over all arms and all covariates: a one-way MANOVA of the covariates on
the arm, summarised by Pillai's trace ``V`` with its F approximation (Pillai 1955; Rencher &
Christensen, *Methods of Multivariate Analysis*, 3rd ed., sec. 6.1.4; the same formula as
statsmodels ``MANOVA.mv_test``)::

    s = min(p, g - 1),  m = (|p - (g - 1)| - 1) / 2,  n' = (N - g - p - 1) / 2
    F = (2n' + s + 1) / (2m + s + 1) * V / (s - V)  on  s(2m + s + 1), s(2n' + s + 1) df

with ``p`` covariate columns, ``g`` arms holding participants and ``N`` participants. ``V`` is the
sum of squared canonical correlations between the covariates and the arm indicators, so the test
does not care which side is called the response. With two arms it is exact and equals the overall
F-test of an OLS regression of the arm indicator on the covariates.

Covariates
----------
Numeric fields enter as they are; missing values are replaced by the field's mean and a
``"field (missing)"`` indicator is added. Categorical fields enter as indicators of all levels but
one (the first; a field with more than ``MAX_COVARIATE_LEVELS`` levels keeps indicators of its
most frequent levels and lumps the rest into the reference). Constant columns and columns that are
linear combinations of earlier ones are left out of the test, so it never fails on a singular
matrix. Nothing per participant is materialised beyond the original columns: cross products and
per-arm sums are counted with ``bincount``, so a re-randomization try costs one pass per field.

Degenerate inputs give a result with ``tested=False`` and a message instead of an exception:
fewer than two arms with participants, no usable covariates, or no more participants than
``p + g`` (the within-arm covariance matrix would be singular). Such a result counts as balanced
(``balance_ok=True``): there is nothing to reject. Arms without participants are left out of the
test and named in the message.

Public API
----------
``prepare_covariates(fields, *, kinds=None) -> CovariateMatrix``
    once per audience; independent of the assignment.
``check_balance(covariates, arms, *, n_arms, p_threshold=0.05) -> BalanceCheck``
    per assignment: the test and a per-arm balance table (``CovariateMeans``).

``DEFAULT_P_THRESHOLD = 0.05``: ``balance_ok`` means the test does not reject balance at the
conventional 5% level, so a fair randomization is flagged 5% of the time. Re-randomization
(``xngin.stats.assignment``) usually asks for more, such as ``p >= 0.5``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import linalg, stats

from xngin.stats.binning import FieldKind, factorize, infer_kind, numeric_values
from xngin.stats.errors import StatsInputError

__all__ = [
    "DEFAULT_P_THRESHOLD",
    "MAX_COVARIATE_LEVELS",
    "BalanceCheck",
    "CovariateMatrix",
    "CovariateMeans",
    "check_balance",
    "prepare_covariates",
]

DEFAULT_P_THRESHOLD = 0.05
MAX_COVARIATE_LEVELS = 50
# A column whose variance is explained by earlier columns up to this share (R^2 > 1 - tol) or that
# varies this little relative to the audience size is dropped as collinear or constant.
_COLLINEAR_TOLERANCE = 1e-9


@dataclass(frozen=True)
class CovariateMeans:
    """One row of the balance table.

    Attributes
    ----------
    covariate : str
        ``"field"`` (mean of the observed values), ``"field (missing)"`` (share missing) or
        ``"field = level"`` (share of participants at that level).
    arm_means : tuple of float or None
        Per arm, in arm order; ``None`` when the arm has nobody with an observed value.
    """

    covariate: str
    arm_means: tuple[float | None, ...]


@dataclass(frozen=True)
class BalanceCheck:
    """Outcome of the joint balance test.

    Attributes
    ----------
    f_statistic, numerator_df, denominator_df, p_value : float or None
        Pillai's-trace F test; ``None`` when not tested. When the covariates separate the arms
        perfectly the F statistic is infinite: ``f_statistic`` is ``None`` (JSON has no
        infinity), ``p_value`` is 0 and ``message`` says so.
    balance_ok : bool
        ``p_value >= p_threshold``, or True when the test could not be run.
    tries : int
        Assignments drawn to reach this one (1 without re-randomization).
    tested : bool
        Whether the test ran; if not, ``message`` says why.
    message : str or None
        Why the test did not run, or which arms were left out.
    covariates_tested : tuple of str
        Design columns that entered the test.
    covariates_dropped : tuple of str
        Design columns left out as constant or collinear.
    covariate_means : tuple of CovariateMeans
        Per-arm balance table.
    """

    f_statistic: float | None
    numerator_df: float | None
    denominator_df: float | None
    p_value: float | None
    balance_ok: bool
    tries: int
    tested: bool
    message: str | None
    covariates_tested: tuple[str, ...]
    covariates_dropped: tuple[str, ...]
    covariate_means: tuple[CovariateMeans, ...]


@dataclass(frozen=True, eq=False)
class _Numeric:
    field: str
    standardized: NDArray[np.float64]  # mean-imputed, (x - center) / scale
    center: float
    scale: float


@dataclass(frozen=True, eq=False)
class _Indicators:
    field: str
    codes: NDArray[np.intp]
    n_levels: int
    columns: tuple[int, ...]  # levels that get an indicator column
    labels: tuple[str, ...]  # one per level
    reference: int | None  # level without a column, shown in the table; None: none


_Block = _Numeric | _Indicators


@dataclass(frozen=True, eq=False)
class CovariateMatrix:
    """Covariates of one audience, prepared for repeated balance checks.

    Attributes
    ----------
    n_participants : int
        Audience size.
    names : tuple of str
        Design column names, in order.
    tested : tuple of int
        Indices of the columns that enter the test (non-constant, linearly independent).
    """

    n_participants: int
    names: tuple[str, ...]
    tested: tuple[int, ...]
    blocks: tuple[_Block, ...]
    column_means: NDArray[np.float64]
    cholesky: NDArray[np.float64]  # of the centred cross products of the tested columns

    @property
    def dropped(self) -> tuple[str, ...]:
        """Design columns left out of the test as constant or collinear."""
        keep = set(self.tested)
        return tuple(name for i, name in enumerate(self.names) if i not in keep)


def _indicators(field: str, values: ArrayLike) -> _Indicators:
    codes, levels = factorize(values, field=field)
    labels = [f"{field} = (missing)" if v is None else f"{field} = {v}" for v in levels]
    if len(levels) <= MAX_COVARIATE_LEVELS:
        return _Indicators(
            field, codes, len(levels), tuple(range(1, len(levels))), tuple(labels), 0
        )
    # Indicators for the most frequent levels; the rest share the reference "other" level.
    counts = np.bincount(codes, minlength=len(levels))
    frequent = np.sort(np.argsort(-counts, kind="stable")[: MAX_COVARIATE_LEVELS - 1])
    other = len(frequent)
    remap = np.full(len(levels), other, dtype=np.intp)
    remap[frequent] = np.arange(other)
    kept_labels = [labels[i] for i in frequent] + [f"{field} = (other levels)"]
    return _Indicators(
        field, remap[codes], other + 1, tuple(range(other)), tuple(kept_labels), other
    )


def _numeric(field: str, values: ArrayLike) -> list[_Block]:
    floats, _ = numeric_values(values, field=field)
    missing = np.isnan(floats)
    observed = floats[~missing]
    center = float(observed.mean()) if observed.size else 0.0
    scale = float(observed.std()) if observed.size else 0.0
    scale = scale if scale > 0 else 1.0
    standardized = np.where(missing, 0.0, (floats - center) / scale)
    blocks: list[_Block] = [_Numeric(field, standardized, center, scale)]
    if missing.any():
        flag = f"{field} (missing)"
        blocks.append(
            _Indicators(flag, missing.astype(np.intp), 2, (1,), (f"{flag} = no", flag), None)
        )
    return blocks


def _width(block: _Block) -> int:
    return 1 if isinstance(block, _Numeric) else len(block.columns)


def _names(block: _Block) -> list[str]:
    if isinstance(block, _Numeric):
        return [block.field]
    return [block.labels[level] for level in block.columns]


def _column_sums(block: _Block) -> NDArray[np.float64]:
    if isinstance(block, _Numeric):
        return np.array([block.standardized.sum()])
    counts = np.bincount(block.codes, minlength=block.n_levels)
    return counts[list(block.columns)].astype(np.float64)


def _cross(a: _Block, b: _Block) -> NDArray[np.float64]:
    """Uncentred cross products ``A^T B`` of two blocks' design columns."""
    if isinstance(a, _Numeric) and isinstance(b, _Numeric):
        return np.array([[float(a.standardized @ b.standardized)]])
    if isinstance(a, _Indicators) and isinstance(b, _Numeric):
        return _cross(b, a).T
    if isinstance(a, _Numeric) and isinstance(b, _Indicators):
        sums = np.bincount(b.codes, weights=a.standardized, minlength=b.n_levels)
        return np.asarray(sums[list(b.columns)][None, :], dtype=np.float64)
    assert isinstance(a, _Indicators) and isinstance(b, _Indicators)
    if a is b:  # indicators of one field are mutually exclusive
        return np.diag(_column_sums(a))
    pairs = np.bincount(a.codes * b.n_levels + b.codes, minlength=a.n_levels * b.n_levels)
    table = pairs.reshape(a.n_levels, b.n_levels).astype(np.float64)
    return table[np.ix_(list(a.columns), list(b.columns))]


def _independent_columns(scatter: NDArray[np.float64], n: int) -> list[int]:
    """Non-constant columns, each kept unless it is a linear combination of earlier kept ones."""
    variance = np.diag(scatter)
    usable = [j for j in range(scatter.shape[0]) if variance[j] > _COLLINEAR_TOLERANCE * max(n, 1)]
    if not usable:
        return []
    scale = np.sqrt(variance[usable])
    correlation = scatter[np.ix_(usable, usable)] / np.outer(scale, scale)
    kept: list[int] = []
    factor = np.zeros((0, 0))
    for j in range(len(usable)):
        # Residual variance of column j given the kept ones, by extending their Cholesky factor.
        link = linalg.solve_triangular(factor, correlation[kept, j], lower=True) if kept else None
        residual = 1.0 - (float(link @ link) if link is not None else 0.0)
        if residual <= _COLLINEAR_TOLERANCE:
            continue
        grown = np.zeros((len(kept) + 1, len(kept) + 1))
        grown[: len(kept), : len(kept)] = factor
        if link is not None:
            grown[len(kept), : len(kept)] = link
        grown[len(kept), len(kept)] = np.sqrt(residual)
        factor = grown
        kept.append(j)
    return [usable[j] for j in kept]


def prepare_covariates(
    fields: Mapping[str, ArrayLike], *, kinds: Mapping[str, FieldKind] | None = None
) -> CovariateMatrix:
    """Turn covariate columns into the design the balance check tests.

    Parameters
    ----------
    fields : mapping of str to array_like
        Covariate field name -> one value per participant (same length for all). May be empty.
    kinds : mapping of str to {"categorical", "numeric"}, optional
        Overrides the inferred kind (see ``xngin.stats.binning.infer_kind``).

    Returns
    -------
    CovariateMatrix
        Reusable for any number of assignments of the same audience.

    Raises
    ------
    StatsInputError
        Columns of different lengths, an unknown kind, or a non-number in a numeric field.
    """
    kinds = kinds or {}
    blocks: list[_Block] = []
    n: int | None = None
    for field, values in fields.items():
        array = np.asarray(values)
        if array.ndim != 1 or (n is not None and array.shape[0] != n):
            raise StatsInputError(
                f"covariate {field!r} must have one value per participant ({n}), got shape "
                f"{array.shape}",
                field=field,
            )
        n = array.shape[0]
        kind = kinds.get(field) or infer_kind(array)
        if kind == "numeric":
            blocks.extend(_numeric(field, array))
        elif kind == "categorical":
            blocks.append(_indicators(field, array))
        else:
            raise StatsInputError(
                f"kind of covariate {field!r} must be 'categorical' or 'numeric', got {kind!r}",
                field=field,
            )
    n = n or 0
    names = [name for block in blocks for name in _names(block)]
    sums = np.concatenate([_column_sums(b) for b in blocks]) if blocks else np.zeros(0)
    means = sums / max(n, 1)
    rows = [np.hstack([_cross(a, b) for b in blocks]) for a in blocks]
    cross = np.vstack(rows) if rows else np.zeros((0, 0))
    scatter = cross - n * np.outer(means, means)
    tested = _independent_columns(scatter, n)
    cholesky = np.zeros((0, 0))
    if tested:
        cholesky = np.asarray(np.linalg.cholesky(scatter[np.ix_(tested, tested)]), dtype=np.float64)
    return CovariateMatrix(
        n_participants=n,
        names=tuple(names),
        tested=tuple(tested),
        blocks=tuple(blocks),
        column_means=means,
        cholesky=cholesky,
    )


def _arm_sums(block: _Block, arms: NDArray[np.intp], n_arms: int) -> NDArray[np.float64]:
    """Per-arm sums of a block's design columns, shape (n_arms, width)."""
    if isinstance(block, _Numeric):
        sums = np.bincount(arms, weights=block.standardized, minlength=n_arms)
        return np.asarray(sums[:, None], dtype=np.float64)
    table = np.bincount(arms * block.n_levels + block.codes, minlength=n_arms * block.n_levels)
    return table.reshape(n_arms, block.n_levels)[:, list(block.columns)].astype(np.float64)


def _balance_table(
    covariates: CovariateMatrix, sums: NDArray[np.float64], counts: NDArray[np.int64]
) -> tuple[CovariateMeans, ...]:
    def ratio(top: NDArray[np.float64], bottom: NDArray[Any]) -> tuple[float | None, ...]:
        return tuple(float(t / b) if b > 0 else None for t, b in zip(top, bottom, strict=True))

    rows: list[CovariateMeans] = []
    start = 0
    blocks = covariates.blocks
    for i, block in enumerate(blocks):
        width = _width(block)
        part = sums[:, start : start + width]
        start += width
        if isinstance(block, _Numeric):
            # Undo the imputation: imputed values sit at the centre, which is 0 once standardized.
            flag = blocks[i + 1] if i + 1 < len(blocks) else None
            missing = (
                sums[:, start]
                if isinstance(flag, _Indicators) and flag.reference is None
                else np.zeros(len(counts))
            )
            observed = counts - missing
            total = part[:, 0] * block.scale + observed * block.center
            rows.append(CovariateMeans(block.field, ratio(total, observed)))
            continue
        if block.reference is not None:
            reference = counts - part.sum(axis=1)
            label = block.labels[block.reference]
            rows.append(CovariateMeans(label, ratio(reference, counts)))
        for j, level in enumerate(block.columns):
            rows.append(CovariateMeans(block.labels[level], ratio(part[:, j], counts)))
    return tuple(rows)


def _untested(
    message: str,
    covariates: CovariateMatrix,
    table: tuple[CovariateMeans, ...],
) -> BalanceCheck:
    return BalanceCheck(
        f_statistic=None,
        numerator_df=None,
        denominator_df=None,
        p_value=None,
        balance_ok=True,
        tries=1,
        tested=False,
        message=message,
        covariates_tested=tuple(covariates.names[j] for j in covariates.tested),
        covariates_dropped=covariates.dropped,
        covariate_means=table,
    )


def _check_threshold(p_threshold: float) -> None:
    if not (isinstance(p_threshold, int | float) and 0.0 <= p_threshold <= 1.0):
        raise StatsInputError(
            f"p_threshold must be a number from 0 to 1, got {p_threshold!r}", field="p_threshold"
        )


def check_balance(
    covariates: CovariateMatrix,
    arms: ArrayLike,
    *,
    n_arms: int,
    p_threshold: float = DEFAULT_P_THRESHOLD,
) -> BalanceCheck:
    """Joint test that the covariates do not predict the arm, across all arms.

    Parameters
    ----------
    covariates : CovariateMatrix
        From ``prepare_covariates`` for the same participants, in the same order.
    arms : array_like of int, shape (n_participants,)
        Arm index of each participant, ``0 .. n_arms - 1``.
    n_arms : int
        Number of arms in the design (>= 1), including arms nobody was assigned to.
    p_threshold : float, optional
        ``balance_ok`` is ``p_value >= p_threshold``; 0 to 1, default 0.05.

    Returns
    -------
    BalanceCheck
        Pillai's-trace F test (module docstring) with per-arm covariate means.

    Raises
    ------
    StatsInputError
        ``arms`` of the wrong length or outside ``0 .. n_arms - 1``, or a bad threshold.
    """
    _check_threshold(p_threshold)
    if isinstance(n_arms, bool) or not isinstance(n_arms, int | np.integer) or n_arms < 1:
        raise StatsInputError(f"n_arms must be a whole number >= 1, got {n_arms!r}", field="n_arms")
    arm_index = np.asarray(arms)
    # Without covariates there is nothing to line up with, so any audience size goes.
    expected = covariates.n_participants if covariates.blocks else arm_index.shape[0]
    if arm_index.shape != (expected,) or (arm_index.size and arm_index.dtype.kind not in "iu"):
        raise StatsInputError(
            f"arms must hold one arm index per participant ({expected}), got "
            f"shape {arm_index.shape} of {arm_index.dtype}",
            field="arms",
        )
    if arm_index.size and (arm_index.min() < 0 or arm_index.max() >= n_arms):
        raise StatsInputError(
            f"arm indices must be from 0 to {n_arms - 1}, got {arm_index.min()} to "
            f"{arm_index.max()}",
            field="arms",
        )
    arm_index = arm_index.astype(np.intp, copy=False)
    counts = np.bincount(arm_index, minlength=n_arms).astype(np.int64)
    blocks = covariates.blocks
    sums = (
        np.hstack([_arm_sums(b, arm_index, n_arms) for b in blocks])
        if blocks
        else np.zeros((n_arms, 0))
    )
    table = _balance_table(covariates, sums, counts)
    filled = np.flatnonzero(counts > 0)
    g, p, n = len(filled), len(covariates.tested), int(arm_index.shape[0])
    if g < 2:
        return _untested("fewer than two arms have participants", covariates, table)
    if p == 0:
        return _untested("no covariate varies across the audience", covariates, table)
    if n <= p + g:
        return _untested(
            f"too few participants to test balance: {n}, needs more than {p + g} "
            f"({p} covariate columns + {g} arms)",
            covariates,
            table,
        )
    empty = [int(a) for a in np.flatnonzero(counts == 0)]
    note = f"arms {empty} have no participants and were left out" if empty else None
    # Between-arm scatter H = B^T B with rows sqrt(n_g) (mean_g - mean); V = trace(H T^-1).
    tested = list(covariates.tested)
    arm_means = sums[filled][:, tested] / counts[filled, None]
    between = (arm_means - covariates.column_means[tested]) * np.sqrt(counts[filled, None])
    whitened = linalg.solve_triangular(covariates.cholesky, between.T, lower=True)
    pillai = float(np.sum(whitened**2))
    q = g - 1
    s = min(p, q)
    m = (abs(p - q) - 1) / 2
    n_half = (n - g - p - 1) / 2
    numerator_df = s * (2 * m + s + 1)
    denominator_df = s * (2 * n_half + s + 1)
    f_statistic: float | None = None
    if s - pillai <= 1e-12 * s:  # a covariate combination determines the arm: F is infinite
        p_value = 0.0
        note = "; ".join(
            [x for x in (note, "the covariates determine the arm exactly (F is infinite)") if x]
        )
    else:
        f_statistic = (2 * n_half + s + 1) / (2 * m + s + 1) * pillai / (s - pillai)
        p_value = float(stats.f.sf(f_statistic, numerator_df, denominator_df))
    return BalanceCheck(
        f_statistic=f_statistic,
        numerator_df=float(numerator_df),
        denominator_df=float(denominator_df),
        p_value=p_value,
        balance_ok=p_value >= p_threshold,
        tries=1,
        tested=True,
        message=note,
        covariates_tested=tuple(covariates.names[j] for j in tested),
        covariates_dropped=covariates.dropped,
        covariate_means=table,
    )
