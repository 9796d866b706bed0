"""Benchmark: stratified assignment of 1,000,000 participants, xngin against stochatreat.

Synthetic, seeded audience: ``region`` (10 levels), ``segment`` (4 levels, unequal shares) and a
numeric ``age`` binned into terciles: 120 strata, three equally weighted arms. Both sides start
from the same pandas DataFrame and end with an arm per participant; each side's time includes
turning the strata columns into strata (our ``code_strata``; for stochatreat, ``pandas.qcut`` of
``age``, since stochatreat stratifies on the values as they are). Best of a few runs after one
warm-up each.

Two variants of the same audience are measured:

Both sides get the audience in a seeded random row order, as the warehouse returns it (sorted
by a seeded hash of the ID); like ``services.assign`` we deal arms in that order within each
stratum (``shuffled_input=True``) rather than shuffling a second time.

integer codes (the headline, reported in the JSON line)
    ``region`` and ``segment`` arrive as integer codes with their level lists. This is what
    ``POST /v1/assign`` works with: ``services.assign`` asks the warehouse for the audience's
    levels and ``dwh.audience.level_code`` sends each categorical stratum as its level's position
    (a ``CASE`` over bound values), so no strings are hashed in Python. Passed to us as
    ``CodedField`` and to stochatreat as the same integer columns.
strings (shown for comparison)
    ``region`` and ``segment`` hold Python strings, as a driver returns raw values. Factorizing
    a million strings costs ~35 ms per column in numpy, which is why the service avoids it.

Imbalance, the same measure for both: the largest ``|count - n_stratum / 3|`` over strata and
arms, each side's strata as it formed them.

Target: at least 10x faster than stochatreat with an imbalance no larger than its. Run:
``.venv/bin/python bench/assign.py``; the last line is the JSON summary.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from stochatreat import stochatreat

from xngin.stats.assignment import assign_arms
from xngin.stats.binning import CodedField, code_strata

N = 1_000_000
ARMS = 3
REPEATS = 5
TARGET = 10.0
REGIONS = [f"region-{i:02d}" for i in range(10)]
SEGMENTS = ["new", "casual", "regular", "power"]


def audience(seed: int = 20261121) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    region = rng.integers(0, len(REGIONS), N)
    segment = rng.choice(len(SEGMENTS), N, p=[0.4, 0.3, 0.2, 0.1])
    # Rows in a seeded random order, as the warehouse returns an audience (ordered by a seeded
    # hash of the ID); both sides get this same frame.
    order = rng.permutation(N)
    region, segment = region[order], segment[order]
    return pd.DataFrame(
        {
            "participant_id": order,
            "region": np.array(REGIONS, dtype=object)[region],
            "segment": np.array(SEGMENTS, dtype=object)[segment],
            "region_code": region,
            "segment_code": segment,
            "age": np.round(rng.gamma(9.0, 4.0, N), 1),
        }
    )


def ours(df: pd.DataFrame, *, coded: bool) -> tuple[np.ndarray, np.ndarray]:
    if coded:
        region: object = CodedField(df["region_code"].to_numpy(), REGIONS)
        segment: object = CodedField(df["segment_code"].to_numpy(), SEGMENTS)
    else:
        region, segment = df["region"].to_numpy(), df["segment"].to_numpy()
    coding = code_strata(
        {"region": region, "segment": segment, "age": df["age"].to_numpy()},  # type: ignore[dict-item]
        numeric_bins=3,
    )
    # As services.assign does: the audience's order is already a seeded random order.
    assignment = assign_arms(coding.codes, weights=[1.0] * ARMS, seed=7, shuffled_input=True)
    return assignment.arms, coding.codes


def theirs(df: pd.DataFrame, *, coded: bool) -> pd.DataFrame:
    columns = ["region_code", "segment_code"] if coded else ["region", "segment"]
    binned = df[["participant_id", *columns]].assign(
        age_bin=pd.qcut(df["age"], 3, labels=False, duplicates="drop")
    )
    return stochatreat(
        data=binned,
        stratum_cols=[*columns, "age_bin"],
        treats=ARMS,
        probs=[1 / ARMS] * ARMS,
        idx_col="participant_id",
        random_state=7,
    )


def best_time(run: Callable[[], object]) -> float:
    run()  # warm-up
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def imbalance(arms: np.ndarray, strata: np.ndarray) -> float:
    dense = np.unique(strata, return_inverse=True)[1]
    counts = np.zeros((dense.max() + 1, ARMS))
    np.add.at(counts, (dense, arms), 1)
    targets = counts.sum(axis=1, keepdims=True) / ARMS
    return float(np.abs(counts - targets).max())


def compare(df: pd.DataFrame, *, coded: bool) -> tuple[float, float, float, float, int]:
    our_time = best_time(lambda: ours(df, coded=coded))
    their_time = best_time(lambda: theirs(df, coded=coded))
    our_arms, our_strata = ours(df, coded=coded)
    result = theirs(df, coded=coded)
    their_imbalance = imbalance(
        result["treat"].to_numpy().astype(np.intp), result["stratum_id"].to_numpy()
    )
    strata = len(np.unique(our_strata))
    return our_time, their_time, imbalance(our_arms, our_strata), their_imbalance, strata


def main() -> None:
    df = audience()
    summary = None
    for coded in (False, True):  # the last one, integer codes, is the headline
        ours_s, theirs_s, our_gap, their_gap, strata = compare(df, coded=coded)
        ratio = theirs_s / ours_s
        met = ratio >= TARGET and our_gap <= their_gap
        name = "integer codes" if coded else "strings"
        print(f"[{name}] {N:,} participants, {strata} strata, {ARMS} arms")
        print(f"  xngin code_strata + assign_arms: {ours_s * 1000:.1f} ms (best of {REPEATS})")
        print(f"  stochatreat (qcut + stochatreat): {theirs_s * 1000:.1f} ms (best of {REPEATS})")
        print(f"  speed-up {ratio:.1f}x (target {TARGET:.0f}x)")
        print(f"  max |count - target| over strata and arms: xngin {our_gap:.3f}, ", end="")
        print(f"stochatreat {their_gap:.3f}; met: {met}")
        summary = {
            "bench": "assign",
            "value": round(ratio, 2),
            "unit": "x faster than stochatreat",
            "target": TARGET,
            "met": met,
        }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
