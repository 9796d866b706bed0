"""Stratified random assignment with arm weights, seeded and reproducible.

With arm shares ``p_a = w_a / sum(w)`` a stratum of ``n_s`` participants has target counts
``T[s, a] = n_s p_a``. Assignment happens in two steps.

Counts (controlled rounding)
    Every cell gets ``floor(T)`` and the leftover seats of each stratum (``n_s - sum_a floor``,
    fewer than the number of arms) go to distinct arms whose target has a fractional part. Which
    arms get them is decided by dependent rounding on the bipartite graph strata x arms (Gandhi,
    Khuller, Parthasarathy & Srinivasan 2006, J. ACM 53(3), sec. 2): repeatedly take a cycle or
    maximal path of fractional cells and shift mass along it at random so that one cell becomes
    whole, with probabilities that keep every cell's expectation. Hence, exactly:

    * every stratum's counts add up to ``n_s`` and each count is within less than one of its
      target (``floor`` or ``ceil``; exactly ``T`` when ``T`` is whole);
    * every arm's total is within less than one of ``N p_a``;
    * ``E[count] = T``: each participant lands in arm ``a`` with probability exactly ``p_a``.

    Strata of equal size have equal targets, so the rounding runs on one row per distinct stratum
    size (holding the summed leftovers of those strata) and the resulting seats are dealt round
    robin to those strata in random order; this keeps the Python loop at the number of distinct
    sizes times arms, whatever the number of strata.
Participants (permuted blocks)
    Within each stratum, a seeded random permutation of its participants takes the arms in blocks
    of the decided counts: a complete, exactly balanced permuted block per stratum. Vectorized:
    one permutation of everyone, a stable sort by stratum, one ``repeat``.

Same seed and same input order give the same assignment; the rounding and the permutation draw
from independent streams spawned from ``numpy.random.SeedSequence(seed)``.

Re-randomization draws assignments with derived seeds until the balance check passes (Morgan &
Rubin 2012, Ann. Statist. 40(2)). Accepting only balanced draws makes the usual analysis
conservative; analysing with the balance covariates recovers the precision.

Public API
----------
``assign_arms(stratum_codes, *, weights, seed, n_strata=None) -> Assignment``
``assign_with_rerandomization(stratum_codes, *, weights, seed, covariates, max_tries=100,
p_threshold=0.5, n_strata=None) -> RerandomizedAssignment``
``derived_seed(seed, attempt) -> int``: the seed re-randomization uses for an attempt.
``arm_targets(n, weights) -> ndarray``: ``n * w_a / sum(w)`` per arm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xngin.stats.balance import BalanceCheck, CovariateMatrix, check_balance
from xngin.stats.errors import StatsInputError

__all__ = [
    "DEFAULT_MAX_TRIES",
    "DEFAULT_RERANDOMIZATION_P_THRESHOLD",
    "Assignment",
    "RerandomizedAssignment",
    "arm_targets",
    "assign_arms",
    "assign_with_rerandomization",
    "derived_seed",
]

DEFAULT_MAX_TRIES = 100
# Accept a draw only if its balance is better than that of half of all randomizations.
DEFAULT_RERANDOMIZATION_P_THRESHOLD = 0.5
# Targets within this (relative) distance of a whole number are treated as whole, so that float
# noise in n * w / sum(w) never costs a seat.
_WHOLE_TOLERANCE = 1e-9
# Seeds stay below 2**53 so JSON clients (JavaScript numbers) keep them exact.
_SEED_BITS = 53


@dataclass(frozen=True, eq=False)
class Assignment:
    """Arms of an audience.

    Attributes
    ----------
    arms : ndarray of intp, shape (n_participants,)
        Arm index of each participant, in input order.
    stratum_arm_counts : ndarray of int64, shape (n_strata, n_arms)
        Participants per stratum and arm.
    seed : int
        The seed that reproduces this assignment with ``assign_arms``.
    """

    arms: NDArray[np.intp]
    stratum_arm_counts: NDArray[np.int64]
    seed: int

    @property
    def arm_sizes(self) -> tuple[int, ...]:
        """Participants per arm."""
        return tuple(int(c) for c in self.stratum_arm_counts.sum(axis=0))


@dataclass(frozen=True, eq=False)
class RerandomizedAssignment:
    """The accepted assignment and its balance check (``balance.tries`` draws were made)."""

    assignment: Assignment
    balance: BalanceCheck


def _shares(weights: Sequence[float]) -> NDArray[np.float64]:
    values = list(weights)
    if not values:
        raise StatsInputError("weights needs one weight per arm, got none", field="weights")
    for i, w in enumerate(values):
        ok = isinstance(w, int | float | np.integer | np.floating) and not isinstance(w, bool)
        if not ok or not math.isfinite(float(w)) or float(w) <= 0:
            raise StatsInputError(
                f"weights[{i}] must be a positive finite number, got {w!r}", field=f"weights[{i}]"
            )
    array = np.asarray(values, dtype=np.float64)
    shares: NDArray[np.float64] = array / array.sum()
    return shares


def arm_targets(n: int, weights: Sequence[float]) -> NDArray[np.float64]:
    """Target count per arm, ``n * w_a / sum(w)``.

    Parameters
    ----------
    n : int
        Participants, >= 0.
    weights : sequence of float
        Relative arm weights, positive.

    Returns
    -------
    ndarray of float64
    """
    targets: NDArray[np.float64] = n * _shares(weights)
    return targets


def _check_seed(seed: int, field: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise StatsInputError(f"{field} must be a whole number >= 0, got {seed!r}", field=field)
    return int(seed)


def derived_seed(seed: int, attempt: int) -> int:
    """Seed of re-randomization attempt ``attempt`` (1 = the first draw, which uses ``seed``).

    Parameters
    ----------
    seed : int
        The experiment's seed, >= 0.
    attempt : int
        1, 2, ...

    Returns
    -------
    int
        ``seed`` for attempt 1; otherwise a value below 2**53 drawn from
        ``SeedSequence(seed, spawn_key=(attempt,))``.
    """
    seed = _check_seed(seed)
    if attempt <= 1:
        return seed
    state = np.random.SeedSequence(seed, spawn_key=(attempt,)).generate_state(1, np.uint64)
    return int(state[0]) >> (64 - _SEED_BITS)


def _snap_whole(values: NDArray[np.float64]) -> NDArray[np.float64]:
    nearest = np.rint(values)
    close = np.abs(values - nearest) <= _WHOLE_TOLERANCE * np.maximum(1.0, np.abs(values))
    return np.where(close, nearest, values)


class _DependentRounding:
    """Dependent rounding of a matrix with entries in [0, 1] and whole row sums (module docs).

    Rows keep their sums exactly, column sums end at the floor or ceiling of theirs, and every
    entry rounds up with probability equal to its value.
    """

    def __init__(self, values: NDArray[np.float64], rng: np.random.Generator) -> None:
        self.rows, self.cols = values.shape
        self.value: list[list[float]] = values.tolist()
        self.rng = rng
        # Fractional cells per column, insertion-ordered so iteration is deterministic.
        self.column_rows: list[dict[int, None]] = [{} for _ in range(self.cols)]
        for g, row in enumerate(self.value):
            for a, v in enumerate(row):
                if self._fractional(v):
                    self.column_rows[a][g] = None

    @staticmethod
    def _fractional(v: float) -> bool:
        return _WHOLE_TOLERANCE < v < 1.0 - _WHOLE_TOLERANCE

    def _other_edge(self, vertex: int, skip: tuple[int, int] | None) -> tuple[int, int] | None:
        # Vertices: rows are 0 .. rows-1, column a is rows + a. Edges are (row, column) cells.
        if vertex < self.rows:
            row = self.value[vertex]
            for a in range(self.cols):
                if (vertex, a) != skip and self._fractional(row[a]):
                    return vertex, a
            return None
        a = vertex - self.rows
        for g in self.column_rows[a]:
            if (g, a) != skip:
                return g, a
        return None

    def _walk(self, start: int) -> tuple[list[tuple[int, int]], int, bool]:
        """Follow fractional edges from ``start`` until a vertex repeats (cycle) or none is left."""
        position = {start: 0}
        edges: list[tuple[int, int]] = []
        vertex, previous = start, None
        while True:
            edge = self._other_edge(vertex, previous)
            if edge is None:
                return edges, vertex, False
            following = edge[0] if vertex >= self.rows else self.rows + edge[1]
            edges.append(edge)
            if following in position:
                return edges[position[following] :], following, True
            position[following] = len(edges)
            vertex, previous = following, edge

    def _shift(self, edges: list[tuple[int, int]]) -> None:
        # Alternate edges move in opposite directions, so every inner vertex keeps its sum.
        up, down = edges[0::2], edges[1::2]
        value = self.value
        alpha = min([1.0 - value[g][a] for g, a in up] + [value[g][a] for g, a in down])
        beta = min([value[g][a] for g, a in up] + [1.0 - value[g][a] for g, a in down])
        step = alpha if self.rng.random() < beta / (alpha + beta) else -beta
        for i, (g, a) in enumerate(edges):
            v = value[g][a] + (step if i % 2 == 0 else -step)
            v = 0.0 if v <= _WHOLE_TOLERANCE else 1.0 if v >= 1.0 - _WHOLE_TOLERANCE else v
            value[g][a] = v
            if not self._fractional(v):
                self.column_rows[a].pop(g, None)

    def run(self) -> NDArray[np.int64]:
        for start in range(self.rows):
            while self._other_edge(start, None) is not None:
                edges, end, cycle = self._walk(start)
                if not cycle:  # restart from a dead end: the walk is then a maximal path
                    edges, _, cycle = self._walk(end)
                self._shift(edges)
        rounded = np.asarray(self.value, dtype=np.float64).reshape(self.rows, self.cols)
        return np.rint(rounded).astype(np.int64)


def _stratum_arm_counts(
    sizes: NDArray[np.int64], shares: NDArray[np.float64], rng: np.random.Generator
) -> NDArray[np.int64]:
    """Controlled rounding of ``sizes x shares`` (module docstring)."""
    n_strata, n_arms = sizes.shape[0], shares.shape[0]
    group_sizes, group_of, group_counts = np.unique(sizes, return_inverse=True, return_counts=True)
    targets = _snap_whole(group_sizes[:, None] * shares[None, :])
    base = np.floor(targets).astype(np.int64)
    leftover = targets - base  # per stratum of the group, in [0, 1)
    seats_per_stratum = group_sizes - base.sum(axis=1)
    # One row per stratum size: the summed leftovers of its strata, whole part handed out first.
    mass = _snap_whole(group_counts[:, None] * leftover)
    whole = np.floor(mass).astype(np.int64)
    seats = whole + _DependentRounding(mass - whole, rng).run()
    if not np.array_equal(seats.sum(axis=1), group_counts * seats_per_stratum):
        raise RuntimeError("controlled rounding lost a seat; this is a bug")
    # Deal each size group's seats round robin over its strata in random order. An arm has at
    # most one seat per stratum of the group, so its consecutive seats land in distinct strata.
    shuffled = rng.permutation(n_strata)
    strata_by_group = shuffled[np.argsort(group_of[shuffled], kind="stable")]
    group_first = np.cumsum(group_counts) - group_counts
    per_group = seats.sum(axis=1)
    seat_group = np.repeat(np.arange(group_sizes.shape[0]), per_group)
    seat_arm = np.repeat(np.tile(np.arange(n_arms), group_sizes.shape[0]), seats.ravel())
    seat_rank = np.arange(seat_group.shape[0]) - np.repeat(
        np.cumsum(per_group) - per_group, per_group
    )
    seat_stratum = strata_by_group[group_first[seat_group] + seat_rank % group_counts[seat_group]]
    counts = base[group_of]
    counts[seat_stratum, seat_arm] += 1
    return counts


def _stratum_codes(stratum_codes: ArrayLike, n_strata: int | None) -> tuple[NDArray[np.intp], int]:
    codes = np.asarray(stratum_codes)
    if codes.ndim != 1 or (codes.size and codes.dtype.kind not in "iu"):
        raise StatsInputError(
            f"stratum_codes must be one whole number per participant, got shape {codes.shape} "
            f"of {codes.dtype}",
            field="stratum_codes",
        )
    codes = codes.astype(np.intp, copy=False)
    if codes.size and codes.min() < 0:
        raise StatsInputError(
            f"stratum_codes must be >= 0, got {codes.min()}", field="stratum_codes"
        )
    needed = int(codes.max()) + 1 if codes.size else 0
    if n_strata is None:
        return codes, needed
    if n_strata < needed:
        raise StatsInputError(
            f"n_strata must cover every stratum code (>= {needed}), got {n_strata}",
            field="n_strata",
        )
    return codes, int(n_strata)


def assign_arms(
    stratum_codes: ArrayLike,
    *,
    weights: Sequence[float],
    seed: int,
    n_strata: int | None = None,
    shuffled_input: bool = False,
) -> Assignment:
    """Stratified permuted-block assignment with arm weights.

    Parameters
    ----------
    stratum_codes : array_like of int, shape (n_participants,)
        Stratum of each participant, >= 0 (``StrataCoding.codes``); one stratum for everyone
        gives complete randomization with exact arm sizes.
    weights : sequence of float
        Relative arm weights, positive and finite, one per arm.
    seed : int
        >= 0. The same seed and input order give the same assignment.
    n_strata : int, optional
        Number of strata (rows of ``stratum_arm_counts``); default ``max(code) + 1``.
    shuffled_input : bool, optional
        True when the input order is itself a seeded random permutation of the audience, as
        the warehouse returns it (ordered by a seeded hash of the ID). Participants are then
        dealt their stratum's arms in input order, skipping a second shuffle; the assignment is
        as random as that order. Default False: shuffle within strata here.

    Returns
    -------
    Assignment
        Arm per participant and counts per stratum and arm; guarantees in the module docstring.

    Raises
    ------
    StatsInputError
        Bad codes, weights or seed.
    """
    shares = _shares(weights)
    seed = _check_seed(seed)
    codes, strata = _stratum_codes(stratum_codes, n_strata)
    rounding_rng, shuffle_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2)
    )
    sizes = np.bincount(codes, minlength=strata).astype(np.int64)
    counts = _stratum_arm_counts(sizes, shares, rounding_rng)
    # Random order within strata: shuffle everyone (unless the input order already is random),
    # then a stable sort by stratum (a radix sort when the codes fit in 16 bits).
    narrow = codes.astype(np.uint16) if strata <= 1 << 16 else codes
    if shuffled_input:
        order = np.argsort(narrow, kind="stable")
    else:
        order = shuffle_rng.permutation(codes.shape[0])
        order = order[np.argsort(narrow[order], kind="stable")]
    dealt = np.repeat(np.tile(np.arange(shares.shape[0], dtype=np.intp), strata), counts.ravel())
    arms = np.empty(codes.shape[0], dtype=np.intp)
    arms[order] = dealt
    return Assignment(arms=arms, stratum_arm_counts=counts, seed=seed)


def assign_with_rerandomization(
    stratum_codes: ArrayLike,
    *,
    weights: Sequence[float],
    seed: int,
    covariates: CovariateMatrix,
    max_tries: int = DEFAULT_MAX_TRIES,
    p_threshold: float = DEFAULT_RERANDOMIZATION_P_THRESHOLD,
    n_strata: int | None = None,
) -> RerandomizedAssignment:
    """Draw assignments until the balance check passes.

    Attempt ``t`` uses ``derived_seed(seed, t)``; the first acceptable draw is returned, or, if
    none of ``max_tries`` passes, the draw with the highest p-value (its ``balance_ok`` is False).
    Deterministic given the inputs.

    Parameters
    ----------
    stratum_codes, weights, seed, n_strata
        As for ``assign_arms``.
    covariates : CovariateMatrix
        The balance covariates of the same participants (``prepare_covariates``).
    max_tries : int, optional
        Draws allowed, 1 to 10,000; default 100.
    p_threshold : float, optional
        Accept a draw when its balance p-value is at least this, 0 to 1; default 0.5.

    Returns
    -------
    RerandomizedAssignment
        The assignment (its ``seed`` reproduces it with ``assign_arms``) and its balance check
        with ``tries`` set to the number of draws made.
    """
    if (
        isinstance(max_tries, bool)
        or not isinstance(max_tries, int)
        or not 1 <= max_tries <= 10_000
    ):
        raise StatsInputError(
            f"max_tries must be a whole number from 1 to 10000, got {max_tries!r}",
            field="max_tries",
        )
    seed = _check_seed(seed)
    codes, strata = _stratum_codes(stratum_codes, n_strata)
    best: tuple[Assignment, BalanceCheck] | None = None
    for attempt in range(1, max_tries + 1):
        assignment = assign_arms(
            codes, weights=weights, seed=derived_seed(seed, attempt), n_strata=strata
        )
        balance = check_balance(
            covariates, assignment.arms, n_arms=len(weights), p_threshold=p_threshold
        )
        if balance.balance_ok:
            return RerandomizedAssignment(assignment, replace(balance, tries=attempt))
        if best is None or (balance.p_value or 0.0) > (best[1].p_value or 0.0):
            best = (assignment, balance)
    assert best is not None
    return RerandomizedAssignment(best[0], replace(best[1], tries=max_tries))
