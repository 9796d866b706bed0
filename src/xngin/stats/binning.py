"""Strata: one integer stratum code per participant from the audience's strata columns.

Every strata field becomes a small set of levels, and each combination of levels that occurs in the
audience is one stratum.

categorical fields
    Every distinct value is a level; missing values (None, NaN, NaT, ``pd.NA``) together form one
    more level, described as ``None``. Levels are sorted by value when the values can be ordered.
numeric fields (numbers, dates, datetimes)
    Equal-frequency bins (``numeric_bins``, default 4: quartiles). Edges always fall between two
    distinct values, so equal values share a bin; heavy ties or few distinct values give fewer
    bins. With at most ``numeric_bins`` distinct values each value is its own level. Missing values
    form their own level, described as ``None``. A bin is described by the interval of values it
    covers, ``"[low, next edge)"``, the last one closed, ``"[low, max]"``; a bin holding one
    value is described by that value.

A field's kind is inferred from its values (numbers other than booleans, dates and datetimes are
numeric; everything else is categorical) unless ``kinds`` says otherwise, for example for a region
stored as an integer code.

Public API
----------
``code_strata(fields, *, numeric_bins=4, kinds=None, n_participants=None) -> StrataCoding``
    stratum code per participant plus a description of every stratum.
``CodedField(codes, levels)``
    a categorical field coded upstream, accepted in place of its values.
``StrataCoding``
    ``codes`` (stratum per participant, ``0 .. n_strata - 1``, strata ordered by their levels),
    ``sizes`` (participants per stratum), ``fields`` (a ``FieldCoding`` per field: kind, levels,
    bin edges) and ``describe(stratum)`` / ``descriptions()``: ``{field: value or bin label}``.
``factorize(values, *, field) -> tuple[codes, levels]``,
``numeric_values(values, *, field) -> tuple[floats, is_datetime]``, ``infer_kind(values)``
    the per-column building blocks, shared with the balance check.

Performance: numbers and integer codes are handled by vectorized numpy; object columns (strings
from a warehouse driver) need one dictionary lookup per value, about 35 ms per million rows. A
caller holding integer codes (for example ``DENSE_RANK() - 1`` computed by the warehouse) can pass
``CodedField(codes, levels)`` instead and skip that.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xngin.stats.errors import StatsInputError

__all__ = [
    "MAX_NUMERIC_BINS",
    "CodedField",
    "FieldCoding",
    "FieldKind",
    "StrataCoding",
    "code_strata",
    "factorize",
    "infer_kind",
    "numeric_values",
]

FieldKind = Literal["categorical", "numeric"]
MAX_NUMERIC_BINS = 100

# Dense relabelling through a lookup table beats sorting while the key range stays this small
# relative to the number of participants.
_LOOKUP_SLACK = 1 << 16


@dataclass(frozen=True)
class FieldCoding:
    """How one strata field was turned into levels.

    Attributes
    ----------
    field : str
        The field name.
    kind : {"categorical", "numeric"}
        How the values were treated.
    levels : tuple
        Description of level ``i``: the value itself (categorical, or a numeric bin holding one
        value), an interval label ``"[low, high)"`` for a numeric bin, or ``None`` for missing.
    cuts : tuple of float
        Numeric fields: a value ``x`` falls in bin ``sum(x >= cut for cut in cuts)``; dates and
        datetimes are compared as seconds since 1970-01-01. Empty for categorical fields.
    """

    field: str
    kind: FieldKind
    levels: tuple[Any, ...]
    cuts: tuple[float, ...] = ()


@dataclass(frozen=True, eq=False)
class CodedField:
    """A categorical field that arrives already coded, e.g. ``DENSE_RANK() - 1`` from the warehouse.

    Attributes
    ----------
    codes : array_like of int
        Level of each participant, ``0 .. len(levels) - 1``.
    levels : sequence
        Value of each level (``None`` for missing), used to describe the strata.
    """

    codes: ArrayLike
    levels: Sequence[Any]


@dataclass(frozen=True, eq=False)
class StrataCoding:
    """Stratum codes of an audience and what each stratum stands for.

    Attributes
    ----------
    codes : ndarray of intp, shape (n_participants,)
        Stratum of each participant, in input order; values ``0 .. n_strata - 1``.
    sizes : ndarray of int64, shape (n_strata,)
        Participants per stratum (every stratum has at least one).
    fields : tuple of FieldCoding
        One per strata field, in the order given.
    level_indices : ndarray of intp, shape (n_strata, n_fields)
        Level of each field in each stratum; strata are sorted by these rows.
    """

    codes: NDArray[np.intp]
    sizes: NDArray[np.int64]
    fields: tuple[FieldCoding, ...]
    level_indices: NDArray[np.intp]

    @property
    def n_strata(self) -> int:
        """Number of strata that occur in the audience."""
        return int(self.sizes.shape[0])

    def describe(self, stratum: int) -> dict[str, Any]:
        """``{field: value or bin label}`` of one stratum (``None`` marks missing values)."""
        row = self.level_indices[stratum]
        return {f.field: f.levels[int(level)] for f, level in zip(self.fields, row, strict=True)}

    def descriptions(self) -> list[dict[str, Any]]:
        """``describe(s)`` for every stratum, in stratum order."""
        return [self.describe(s) for s in range(self.n_strata)]


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN and NaT are not equal to themselves
    except (TypeError, ValueError):
        return True  # pd.NA refuses to be a truth value


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real | decimal.Decimal) and not isinstance(value, bool)


def infer_kind(values: NDArray[Any]) -> FieldKind:
    """Whether a column is numeric (binned) or categorical, judged from its dtype and values.

    Parameters
    ----------
    values : ndarray
        One column. Integer, unsigned, float and datetime64 dtypes are numeric, booleans and
        strings categorical; for object columns the first non-missing value decides (numbers
        other than booleans, dates and datetimes are numeric).

    Returns
    -------
    {"categorical", "numeric"}
    """
    if values.dtype.kind in "iufM":
        return "numeric"
    if values.dtype.kind == "O":
        for value in values.flat:
            if not _is_missing(value):
                numeric = _is_number(value) or isinstance(value, dt.date)
                return "numeric" if numeric else "categorical"
    return "categorical"


def _sort_levels(levels: list[Any]) -> list[Any]:
    try:
        return sorted(levels)
    except TypeError:  # mixed types: order by type name, then value; else keep first appearance
        try:
            return sorted(levels, key=lambda v: (type(v).__name__, v))
        except TypeError:
            return levels


def _dense_integers(values: NDArray[Any]) -> tuple[NDArray[np.intp], NDArray[Any]]:
    """Codes ``0..k-1`` in value order and the ``k`` distinct values of an integer array."""
    if values.size == 0:
        return np.zeros(0, dtype=np.intp), values[:0]
    low, high = int(values.min()), int(values.max())
    if high - low <= 4 * values.size + _LOOKUP_SLACK:
        shifted = (values if low == 0 else values - low).astype(np.intp, copy=False)
        present = np.bincount(shifted, minlength=high - low + 1) > 0
        if present.all():  # already dense codes 0..k-1 (shifted): nothing to relabel
            return shifted, np.arange(low, high + 1)
        lookup = np.cumsum(present) - 1
        return lookup[shifted].astype(np.intp, copy=False), np.flatnonzero(present) + low
    distinct, inverse = np.unique(values, return_inverse=True)
    return inverse.astype(np.intp, copy=False), distinct


def factorize(values: ArrayLike, *, field: str) -> tuple[NDArray[np.intp], tuple[Any, ...]]:
    """Categorical levels of one column.

    Parameters
    ----------
    values : array_like, 1-D
        The column. Missing values (None, NaN, NaT, ``pd.NA``) form one level, placed last and
        reported as ``None``.
    field : str
        Field name, used in error messages.

    Returns
    -------
    codes : ndarray of intp
        Level of each value, ``0 .. len(levels) - 1``.
    levels : tuple
        The distinct values (as Python scalars), sorted when they can be ordered.
    """
    array = _as_column(values, field)
    kind = array.dtype.kind
    if kind in "iub":
        codes, distinct = _dense_integers(array.astype(np.int64) if kind == "b" else array)
        levels = tuple(bool(v) for v in distinct) if kind == "b" else tuple(distinct.tolist())
        return codes, levels
    if kind in "fmM":
        missing = np.isnan(array) if kind == "f" else np.isnat(array)
        distinct, inverse = np.unique(array[~missing], return_inverse=True)
        codes = np.full(array.shape[0], distinct.shape[0], dtype=np.intp)
        codes[~missing] = inverse
        extra: tuple[Any, ...] = (None,) if missing.any() else ()
        return codes, tuple(distinct.tolist()) + extra
    if kind in "US" or kind == "T":
        distinct, inverse = np.unique(array, return_inverse=True)
        return inverse.astype(np.intp, copy=False), tuple(distinct.tolist())
    return _factorize_objects(array)


def _factorize_objects(array: NDArray[Any]) -> tuple[NDArray[np.intp], tuple[Any, ...]]:
    # One hash lookup per value: setdefault stores the position where a value first appears, so
    # the first-appearance positions identify the levels without a second pass.
    first_seen: dict[Any, int] = {}
    items = array.tolist()
    first = np.fromiter(map(first_seen.setdefault, items, count()), dtype=np.intp, count=len(items))
    present = [v for v in first_seen if not _is_missing(v)]
    levels = _sort_levels(present)
    rank = {v: i for i, v in enumerate(levels)}
    lookup = np.empty(len(items), dtype=np.intp)
    # Every missing value (distinct NaN objects are distinct dict keys) maps to the last level.
    has_missing = len(present) < len(first_seen)
    for value, position in first_seen.items():
        lookup[position] = rank.get(value, len(levels))
    codes = lookup[first] if len(items) else first
    return codes, tuple(levels) + ((None,) if has_missing else ())


def _as_column(values: ArrayLike, field: str) -> NDArray[Any]:
    array = np.asarray(values)
    if array.ndim != 1:
        raise StatsInputError(
            f"strata field {field!r} must be one column of values, got shape {array.shape}",
            field=field,
        )
    return array


def _utc_naive(value: Any) -> Any:
    # numpy has no time zones: aware datetimes are compared as UTC.
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def numeric_values(values: ArrayLike, *, field: str) -> tuple[NDArray[np.float64], bool]:
    """A column as floats for binning or averaging.

    Parameters
    ----------
    values : array_like, 1-D
        Numbers, datetime64 values, or objects (numbers, ``Decimal``, dates, datetimes) with
        missing values among them.
    field : str
        Field name, used in error messages.

    Returns
    -------
    floats : ndarray of float64
        The values, NaN where missing; dates and datetimes as seconds since 1970-01-01.
    is_datetime : bool
        Whether the values were dates or datetimes.

    Raises
    ------
    StatsInputError
        A value that is not a number, date or datetime.
    """
    array = _as_column(values, field)
    kind = array.dtype.kind
    if kind in "iuf":
        return array.astype(np.float64, copy=False), False
    if kind == "M":
        seconds = array.astype("datetime64[s]")
        out = seconds.astype(np.int64).astype(np.float64)
        out[np.isnat(seconds)] = np.nan
        return out, True
    first = next((v for v in array.flat if not _is_missing(v)), None)
    if isinstance(first, dt.date):
        stamps = [None if _is_missing(v) else _utc_naive(v) for v in array.tolist()]
        return numeric_values(np.array(stamps, dtype="datetime64[s]"), field=field)
    try:
        return np.array(
            [math.nan if _is_missing(v) else float(v) for v in array.tolist()], dtype=np.float64
        ), False
    except (TypeError, ValueError):
        raise StatsInputError(
            f"strata field {field!r} is treated as numeric but holds a value that is not a "
            f"number; mark it categorical instead",
            field=field,
        ) from None


def _equal_frequency_cuts(ordered: NDArray[np.float64], bins: int) -> NDArray[np.float64]:
    """Bin edges for sorted non-missing values: ``bins`` groups as equal as ties allow."""
    size = ordered.shape[0]
    # An edge may only sit where the value changes, which keeps equal values in one bin.
    starts = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
    if starts.shape[0] < bins:
        return ordered[starts]
    positions: list[int] = []
    previous = 0
    for remaining in range(bins, 1, -1):
        # Aim at an equal share of what is left, so a heavy tie early on does not starve the rest.
        target = previous + (size - previous) / remaining
        i = int(np.searchsorted(starts, target))
        options = [int(starts[j]) for j in (i - 1, i) if 0 <= j < starts.shape[0]]
        options = [p for p in options if p > previous]
        if not options:
            break
        previous = min(options, key=lambda p: (abs(p - target), p))
        positions.append(previous)
    return ordered[np.array(positions, dtype=np.intp)]


def _format_number(value: float, is_datetime: bool) -> str:
    if is_datetime:
        stamp = np.datetime64(int(value), "s")
        return str(stamp.astype("datetime64[D]")) if value % 86400 == 0 else str(stamp)
    return f"{value:.6g}"


def _scalar(value: float, is_datetime: bool, integral: bool) -> Any:
    if is_datetime:
        return _format_number(value, True)
    return int(value) if integral else float(value)


def _bin_numeric(
    array: NDArray[Any], *, field: str, bins: int
) -> tuple[NDArray[np.intp], FieldCoding]:
    values, is_datetime = numeric_values(array, field=field)
    missing = np.isnan(values)
    any_missing = bool(missing.any())
    ordered = np.sort(values[~missing] if any_missing else values)
    cuts = _equal_frequency_cuts(ordered, bins) if ordered.shape[0] else ordered[:0]
    codes = np.zeros(values.shape[0], dtype=np.intp)
    for cut in cuts:
        codes += values >= cut
    # Integer columns that arrive as objects (nullable integers) keep integer labels too.
    integral = array.dtype.kind in "iu" or (
        array.dtype.kind == "O" and bool(np.all(ordered == np.floor(ordered)))
    )
    levels: list[Any] = []
    if ordered.shape[0]:
        lows = np.concatenate([ordered[:1], cuts])
        highs = np.concatenate([cuts, ordered[-1:]])
        last_of_bin = np.searchsorted(ordered, cuts, side="left") - 1
        maxima = np.concatenate([ordered[last_of_bin], ordered[-1:]])
        for i, (low, high, top) in enumerate(zip(lows, highs, maxima, strict=True)):
            if low == top:  # the bin holds a single value: name it
                levels.append(_scalar(float(low), is_datetime, integral))
                continue
            closing = "]" if i == len(cuts) else ")"
            low_text = _format_number(float(low), is_datetime)
            high_text = _format_number(float(high), is_datetime)
            levels.append(f"[{low_text}, {high_text}{closing}")
    if any_missing:
        codes[missing] = len(levels)
        levels.append(None)
    return codes, FieldCoding(field, "numeric", tuple(levels), tuple(float(c) for c in cuts))


def _coded_field(coded: CodedField, field: str) -> tuple[NDArray[np.intp], FieldCoding]:
    codes = _as_column(coded.codes, field)
    if codes.size and (
        codes.dtype.kind not in "iu" or codes.min() < 0 or codes.max() >= len(coded.levels)
    ):
        raise StatsInputError(
            f"codes of strata field {field!r} must be whole numbers from 0 to "
            f"{len(coded.levels) - 1} (one per level), got {codes.dtype} values",
            field=field,
        )
    return codes.astype(np.intp, copy=False), FieldCoding(field, "categorical", tuple(coded.levels))


def _code_field(
    values: ArrayLike | CodedField, *, field: str, kind: FieldKind | None, bins: int
) -> tuple[NDArray[np.intp], FieldCoding]:
    if isinstance(values, CodedField):
        return _coded_field(values, field)
    array = _as_column(values, field)
    if kind is None:
        kind = infer_kind(array)
    if kind == "numeric":
        return _bin_numeric(array, field=field, bins=bins)
    if kind != "categorical":
        raise StatsInputError(
            f"kind of strata field {field!r} must be 'categorical' or 'numeric', got {kind!r}",
            field=field,
        )
    codes, levels = factorize(array, field=field)
    return codes, FieldCoding(field, "categorical", levels)


def _compact(keys: NDArray[np.intp], key_count: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Dense codes in key order and the distinct keys that occur."""
    if key_count <= 4 * keys.shape[0] + _LOOKUP_SLACK:
        present = np.bincount(keys, minlength=key_count) > 0
        lookup = np.cumsum(present) - 1
        return lookup[keys].astype(np.intp, copy=False), np.flatnonzero(present)
    distinct, inverse = np.unique(keys, return_inverse=True)
    return inverse.astype(np.intp, copy=False), distinct.astype(np.intp, copy=False)


def code_strata(
    fields: Mapping[str, ArrayLike | CodedField],
    *,
    numeric_bins: int = 4,
    kinds: Mapping[str, FieldKind] | None = None,
    n_participants: int | None = None,
) -> StrataCoding:
    """Turn strata columns into one stratum code per participant.

    Parameters
    ----------
    fields : mapping of str to array_like or CodedField
        Strata field name -> its values, one per participant, all the same length, or a
        ``CodedField`` for a categorical field coded upstream (the fast path). May be empty: then
        everyone is in one stratum and ``n_participants`` gives the audience size.
    numeric_bins : int, optional
        Equal-frequency bins per numeric field, 1 to 100; default 4 (quartiles).
    kinds : mapping of str to {"categorical", "numeric"}, optional
        Overrides the inferred kind of some fields.
    n_participants : int, optional
        Audience size; required when ``fields`` is empty, checked otherwise.

    Returns
    -------
    StrataCoding
        Codes per participant, stratum sizes, per-field levels; strata are numbered in the
        lexicographic order of their levels (first field slowest).

    Raises
    ------
    StatsInputError
        Columns of different lengths, a column that is not 1-D, a bad ``numeric_bins`` or kind,
        or a non-number in a numeric field.
    """
    if isinstance(numeric_bins, bool) or not isinstance(numeric_bins, int | np.integer):
        raise StatsInputError(
            f"numeric_bins must be a whole number from 1 to {MAX_NUMERIC_BINS}, "
            f"got {numeric_bins!r}",
            field="numeric_bins",
        )
    if not 1 <= numeric_bins <= MAX_NUMERIC_BINS:
        raise StatsInputError(
            f"numeric_bins must be from 1 to {MAX_NUMERIC_BINS}, got {numeric_bins}",
            field="numeric_bins",
        )
    kinds = kinds or {}
    unknown = sorted(set(kinds) - set(fields))
    if unknown:
        raise StatsInputError(
            f"kinds names fields that are not strata fields: {unknown}; strata fields are "
            f"{sorted(fields)}",
            field="kinds",
        )
    n = n_participants
    coded: list[tuple[NDArray[np.intp], FieldCoding]] = []
    for name, values in fields.items():
        codes, coding = _code_field(values, field=name, kind=kinds.get(name), bins=numeric_bins)
        if n is None:
            n = codes.shape[0]
        elif codes.shape[0] != n:
            raise StatsInputError(
                f"strata field {name!r} has {codes.shape[0]} values but the audience has {n} "
                f"participants; every field needs one value per participant",
                field=name,
            )
        coded.append((codes, coding))
    if n is None:
        raise StatsInputError(
            "without strata fields the audience size n_participants is needed",
            field="n_participants",
        )
    keys, combos = _combine([codes for codes, _ in coded], [c for _, c in coded], n)
    sizes = np.bincount(keys, minlength=combos.shape[0]).astype(np.int64)
    return StrataCoding(
        codes=keys, sizes=sizes, fields=tuple(c for _, c in coded), level_indices=combos
    )


def _combine(
    codes: list[NDArray[np.intp]], codings: list[FieldCoding], n: int
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Dense stratum codes and the level indices of each stratum, strata in lexicographic order."""
    if not codes:
        return np.zeros(n, dtype=np.intp), np.zeros((min(n, 1), 0), dtype=np.intp)
    limit = 4 * n + _LOOKUP_SLACK
    keys = np.zeros(n, dtype=np.intp)
    rows = np.zeros((1, 0), dtype=np.intp)  # level indices of the compacted key values
    pending: list[int] = []  # widths of the fields folded into keys since the last compaction
    space = 1
    for field_codes, coding in zip(codes, codings, strict=True):
        width = max(len(coding.levels), 1)
        if pending and space * width > limit:
            keys, rows = _compact_rows(keys, space, rows, pending)
            pending, space = [], rows.shape[0]
        # Mixed-radix key: the first field varies slowest, so strata sort by their levels. While
        # the key space has one value the keys are all zero and the field's codes are the key.
        keys = field_codes if space == 1 else keys * width + field_codes
        pending.append(width)
        space *= width
    return _compact_rows(keys, space, rows, pending)


def _compact_rows(
    keys: NDArray[np.intp], space: int, rows: NDArray[np.intp], pending: list[int]
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    dense, present = _compact(keys, space)
    digits = np.unravel_index(present, (rows.shape[0], *pending))
    table = np.column_stack([rows[digits[0]], *digits[1:]]).astype(np.intp)
    return dense, table
