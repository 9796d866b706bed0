"""The design form: HTML inputs named like the API's fields, parsed into the services' pieces.

Inputs carry the API's field paths as names (``filters[0].value``, ``arms[1].weight``,
``metrics[0].metric_pct_change``, ``alpha``...), so an error's ``field`` names the input it belongs
to, whether it comes from parsing here, from pydantic, or from a service
(:func:`xngin.web.errors.place_errors` does the placing).

HTML sends text; the API's clients send typed JSON. :meth:`DesignForm.to_design` turns filter
values into the JSON types of their field (from the sheet) and leaves text it cannot read as it
is, so the filter compiler's own message (``... does not fit field 'age' of type integer``) is
the one shown.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xngin.services.design import ArmIn, FilterIn, MetricTargetIn
from xngin.services.experiment_specs import ExperimentCreate

__all__ = [
    "ArmRow",
    "DesignForm",
    "DesignRequest",
    "FilterRow",
    "FormInvalid",
    "MetricRow",
    "field_path",
    "parse_filter_value",
]

_ROW = re.compile(r"^(filters|arms|metrics)\[(\d+)\]\.(\w+)$")
#: Words that stand for a missing value in a filter's value list.
MISSING_WORDS = frozenset({"null", "(missing)"})
MAX_ROWS = 50
RELATIONS = ("includes", "excludes", "between")


class FormInvalid(Exception):
    """The form cannot become a design; ``errors`` are (field, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))
        self.errors = errors


def field_path(loc: Iterable[object]) -> str:
    """A pydantic location as the API writes it: ``('arms', 0, 'weight')`` -> ``arms[0].weight``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "form"


def validation_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """Pydantic's errors as (field, message), messages without pydantic's ``Value error,``."""
    out = []
    for error in exc.errors():
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        out.append((field_path(error.get("loc", ())), message))
    return out


@dataclass
class FilterRow:
    field_name: str = ""
    relation: str = "includes"
    value: str = ""


@dataclass
class ArmRow:
    arm_name: str = ""
    weight: str = "1"
    arm_description: str = ""


@dataclass
class MetricRow:
    field_name: str = ""
    metric_pct_change: str = ""
    metric_target: str = ""


class DesignRequest(BaseModel):
    """What the power analysis and the assignment preview take, as the API's requests do."""

    model_config = ConfigDict(extra="forbid")

    participant_type: str = Field(min_length=1)
    filters: list[FilterIn] = Field(default_factory=list)
    arms: list[ArmIn]
    metrics: list[MetricTargetIn] = Field(default_factory=list)
    strata: list[str] = Field(default_factory=list)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    power: float = Field(default=0.8, gt=0, lt=1)
    desired_n: int | None = Field(default=None, ge=1)
    seed: int = Field(ge=-(2**63), lt=2**63)
    multiple_comparison: Literal["none", "bonferroni"] = "none"


def _number(text: str) -> int | float | None:
    try:
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        value = float(text.replace("_", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _typed(text: str, data_type: str) -> Any:
    """One filter value as its field's JSON type; unreadable text is returned unchanged."""
    if text.lower() in MISSING_WORDS:
        return None
    if data_type == "boolean":
        lowered = text.lower()
        if lowered in ("true", "yes", "1"):
            return True
        if lowered in ("false", "no", "0"):
            return False
        return text
    if data_type in ("integer", "float", "decimal"):
        number = _number(text)
        return text if number is None else number
    return text


def parse_filter_value(text: str, *, data_type: str, relation: str) -> list[Any]:
    """Read a filter's comma-separated values.

    Parameters
    ----------
    text : str
        As typed: ``Nairobi, Kisumu``; for ``between`` ``lower, upper`` with an empty side for an
        open end (``18,`` is 18 or more). ``null`` or ``(missing)`` stands for a missing value.
    data_type : str
        The field's type in the sheet (``string``, ``integer``, ``float``, ``boolean``, ...).
    relation : str
        ``includes``, ``excludes`` or ``between``.

    Returns
    -------
    list
        JSON values: numbers and booleans for such fields, text otherwise.
    """
    parts = [p.strip() for p in text.split(",")] if text.strip() else []
    if relation == "between":
        return [None if p == "" else _typed(p, data_type) for p in parts]
    return [_typed(p, data_type) for p in parts if p != ""]


def _percent(text: str) -> Any:
    """A percentage as typed (``10`` for +10%) as the API's fraction; unreadable text unchanged."""
    if not text.strip():
        return None
    number = _number(text.strip().rstrip("%").strip())
    return text if number is None else number / 100


def _optional(text: str) -> str | None:
    return text.strip() or None


@dataclass
class DesignForm:
    """The state of the design form, as text, exactly as the user left it."""

    participant_type: str
    filters: list[FilterRow] = field(default_factory=list)
    arms: list[ArmRow] = field(default_factory=list)
    metrics: list[MetricRow] = field(default_factory=list)
    strata: list[str] = field(default_factory=list)
    alpha: str = "0.05"
    power: str = "0.8"
    desired_n: str = ""
    seed: str = ""
    multiple_comparison: str = "none"
    name: str = ""
    description: str = ""
    hypothesis: str = ""
    type: str = "preassigned"

    @classmethod
    def initial(cls, participant_type: str, *, seed: int) -> DesignForm:
        """A starting point: no filters, a control and a treatment arm, one empty metric row."""
        return cls(
            participant_type=participant_type,
            arms=[ArmRow(arm_name="control"), ArmRow(arm_name="treatment")],
            metrics=[MetricRow()],
            seed=str(seed),
        )

    @classmethod
    def from_form(cls, form: Mapping[str, Any], *, strata: Iterable[str] = ()) -> DesignForm:
        """Read the submitted form. Rows come back in index order, renumbered from 0.

        ``strata`` are the checked strata boxes (a multi-valued field, passed separately).
        """
        rows: dict[str, dict[int, dict[str, str]]] = {"filters": {}, "arms": {}, "metrics": {}}
        for key, value in form.items():
            match = _ROW.match(key)
            if match is None or not isinstance(value, str):
                continue
            group, index, name = match.group(1), int(match.group(2)), match.group(3)
            if index < MAX_ROWS:
                rows[group].setdefault(index, {})[name] = value

        def build(group: str, kind: type[Any]) -> list[Any]:
            known = set(kind.__dataclass_fields__)
            return [
                kind(**{k: v for k, v in rows[group][i].items() if k in known})
                for i in sorted(rows[group])
            ]

        def text(name: str, default: str = "") -> str:
            value = form.get(name, default)
            return value if isinstance(value, str) else default

        return cls(
            participant_type=text("participant_type"),
            filters=build("filters", FilterRow),
            arms=build("arms", ArmRow),
            metrics=build("metrics", MetricRow),
            strata=[s for s in strata if s],
            alpha=text("alpha", "0.05"),
            power=text("power", "0.8"),
            desired_n=text("desired_n"),
            seed=text("seed"),
            multiple_comparison=text("multiple_comparison", "none"),
            name=text("name"),
            description=text("description"),
            hypothesis=text("hypothesis"),
            type=text("type", "preassigned"),
        )

    # Rows ---------------------------------------------------------------------------------------

    def apply(self, op: str) -> bool:
        """Add or remove a row (``add_filter``, ``remove_arm:1``...); False for another ``op``."""
        groups: dict[str, tuple[list[Any], type[Any]]] = {
            "filter": (self.filters, FilterRow),
            "arm": (self.arms, ArmRow),
            "metric": (self.metrics, MetricRow),
        }
        verb, _, rest = op.partition("_")
        kind, _, index = rest.partition(":")
        if kind not in groups:
            return False
        rows, row_type = groups[kind]
        if verb == "add" and not index:
            if len(rows) < MAX_ROWS:
                rows.append(row_type())
            return True
        if verb == "remove" and index.isdigit():
            if int(index) < len(rows):
                del rows[int(index)]
            return True
        return False

    def input_names(self) -> list[str]:
        """Names of the inputs the form shows, in page order (where errors can be placed)."""
        names = ["name", "type", "description", "hypothesis"]
        for i in range(len(self.filters)):
            names += [f"filters[{i}].field_name", f"filters[{i}].relation", f"filters[{i}].value"]
        for i in range(len(self.arms)):
            names += [f"arms[{i}].arm_name", f"arms[{i}].weight", f"arms[{i}].arm_description"]
        for i in range(len(self.metrics)):
            names += [
                f"metrics[{i}].field_name",
                f"metrics[{i}].metric_pct_change",
                f"metrics[{i}].metric_target",
            ]
        names += ["strata", "alpha", "power", "multiple_comparison", "desired_n", "seed"]
        return names

    def compact(self) -> list[int]:
        """Drop filter and metric rows left entirely blank, so they are not read as mistakes.

        Called before every conversion; the page is then shown with the remaining rows, so error
        fields (``metrics[1]...``) keep pointing at the row they concern. Returns the former
        indices of the filter rows kept, for callers that answer about the page as it was.
        """
        kept = [i for i, r in enumerate(self.filters) if r.field_name or r.value.strip()]
        self.filters = [self.filters[i] for i in kept]
        self.metrics = [
            r
            for r in self.metrics
            if r.field_name or r.metric_pct_change.strip() or r.metric_target.strip()
        ]
        return kept

    # Conversion ---------------------------------------------------------------------------------

    def _fields(self, filter_types: Mapping[str, str]) -> dict[str, Any]:
        filters = [
            {
                "field_name": row.field_name,
                "relation": row.relation,
                "value": parse_filter_value(
                    row.value,
                    data_type=filter_types.get(row.field_name, "string"),
                    relation=row.relation,
                ),
            }
            for row in self.filters
        ]
        arms = [
            {
                "arm_name": row.arm_name.strip(),
                "weight": row.weight.strip() or "1",
                "arm_description": row.arm_description,
            }
            for row in self.arms
        ]
        metrics = [
            {
                "field_name": row.field_name,
                "metric_pct_change": _percent(row.metric_pct_change),
                "metric_target": _optional(row.metric_target),
            }
            for row in self.metrics
        ]
        return {
            "participant_type": self.participant_type,
            "filters": filters,
            "arms": arms,
            "metrics": metrics,
            "strata": list(self.strata),
            "alpha": self.alpha.strip() or "0.05",
            "power": self.power.strip() or "0.8",
            "desired_n": _optional(self.desired_n),
            "multiple_comparison": self.multiple_comparison or "none",
        }

    def audience_filters(self, filter_types: Mapping[str, str]) -> list[FilterIn]:
        """Only the filters (for the audience count); raises :class:`FormInvalid`."""
        self.compact()
        try:
            request = DesignRequest.model_validate(
                {
                    "participant_type": self.participant_type,
                    "filters": self._fields(filter_types)["filters"],
                    "arms": [],
                    "seed": 0,
                }
            )
        except ValidationError as exc:
            raise FormInvalid(validation_errors(exc)) from exc
        return request.filters

    def to_design(self, filter_types: Mapping[str, str]) -> DesignRequest:
        """The design for the power analysis or the assignment preview.

        Parameters
        ----------
        filter_types : mapping of str to str
            The sheet's filter fields and their data types, for reading filter values.

        Raises
        ------
        FormInvalid
            With (field, message) for every value pydantic refuses.
        """
        self.compact()
        try:
            return DesignRequest.model_validate(
                {**self._fields(filter_types), "seed": self.seed.strip() or "0"}
            )
        except ValidationError as exc:
            raise FormInvalid(validation_errors(exc)) from exc

    def to_experiment(self, filter_types: Mapping[str, str]) -> ExperimentCreate:
        """The experiment to save (the design plus name, description, hypothesis and type).

        Raises
        ------
        FormInvalid
            With (field, message) for every value pydantic refuses.
        """
        self.compact()
        body = {
            **self._fields(filter_types),
            "name": self.name.strip(),
            "description": self.description,
            "hypothesis": self.hypothesis,
            "type": self.type,
            "seed": _optional(self.seed),
        }
        try:
            return ExperimentCreate.model_validate(body)
        except ValidationError as exc:
            raise FormInvalid(validation_errors(exc)) from exc
