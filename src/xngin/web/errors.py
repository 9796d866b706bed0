"""Where an error is shown on a form: next to the input its ``field`` names, or above the form.

Services raise :class:`xngin.errors.XnginError` with ``field`` written as an API field path
(``filters[0].value``, ``metrics[1]``, ``strata[2]``, ``arms``); the forms name their inputs the
same way, so placing an error is matching names, with two fallbacks: the first input inside the
named part (``metrics[1]`` -> ``metrics[1].field_name``), then the form section (``arms``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["FieldErrors", "input_id", "place_errors"]

_INDEX_SUFFIX = re.compile(r"\[\d+\]$")


def input_id(name: str) -> str:
    """An HTML id for an input name: ``filters[0].value`` -> ``f-filters-0-value``."""
    return "f-" + re.sub(r"[^A-Za-z0-9_]+", "-", name).strip("-")


@dataclass
class FieldErrors:
    """Errors by input name, by form section, and those that belong to no input (``summary``)."""

    by_input: dict[str, list[str]] = field(default_factory=dict)
    by_section: dict[str, list[str]] = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.by_input or self.by_section or self.summary)

    def for_input(self, name: str) -> list[str]:
        return self.by_input.get(name, [])

    def for_section(self, name: str) -> list[str]:
        return self.by_section.get(name, [])

    def count(self) -> int:
        return (
            sum(len(v) for v in self.by_input.values())
            + sum(len(v) for v in self.by_section.values())
            + len(self.summary)
        )


def _target(path: str, input_names: Sequence[str]) -> str | None:
    if path in input_names:
        return path
    # A whole row (metrics[1]) -> its first input; a whole list (arms) -> its section instead.
    if path.endswith("]"):
        for name in input_names:
            if name.startswith(path + "."):
                return name
    # A list field shown as one multi-valued input: strata[2] -> strata.
    base = _INDEX_SUFFIX.sub("", path)
    if base != path and base in input_names:
        return base
    return None


def place_errors(
    errors: Iterable[tuple[str | None, str]],
    *,
    input_names: Sequence[str],
    sections: Sequence[str] = (),
) -> FieldErrors:
    """Assign each (field, message) to an input, a section, or the summary.

    Parameters
    ----------
    errors : iterable of (str or None, str)
        The field path an error concerns (None: the whole request) and its message.
    input_names : sequence of str
        The names of the inputs on the page, in page order.
    sections : sequence of str
        Names of form sections (``filters``, ``arms``...) that can hold an error of their own.

    Returns
    -------
    FieldErrors
    """
    placed = FieldErrors()
    for path, message in errors:
        if path:
            name = _target(path, input_names)
            if name is not None:
                placed.by_input.setdefault(name, []).append(message)
                continue
            root = re.split(r"[.\[]", path, maxsplit=1)[0]
            if root in sections:
                placed.by_section.setdefault(root, []).append(message)
                continue
            placed.summary.append(f"{path}: {message}")
        else:
            placed.summary.append(message)
    return placed
