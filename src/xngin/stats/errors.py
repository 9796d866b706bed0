"""The one exception type of ``xngin.stats``.

``stats`` imports nothing of ours (see ARCHITECTURE.md), so it cannot raise ``xngin.errors``
directly. Functions here raise :class:`StatsInputError` when an input is unusable; services
translate it into :class:`xngin.errors.InvalidInput`, keeping ``field`` so the API can point at the
offending request field (for example ``"metrics[0].metric_target"``).
"""

from __future__ import annotations

__all__ = ["StatsInputError"]


class StatsInputError(ValueError):
    """An input to a statistics function is outside what the method accepts.

    Parameters
    ----------
    message : str
        Names the bad value and what would be accepted.
    field : str or None, optional
        The caller-facing field the value came from. Statistics functions use their own parameter
        name (``"alpha"``, ``"metric_target"``); services may prefix it (``"metrics[0]."``).
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def with_field_prefix(self, prefix: str) -> StatsInputError:
        """Return a copy whose ``field`` is prefixed, e.g. ``"metrics[0]."`` + ``"metric_target"``.

        Parameters
        ----------
        prefix : str
            Text put in front of ``field``; if ``field`` is None the prefix without a trailing
            dot becomes the field.

        Returns
        -------
        StatsInputError
            A new exception with the same message.
        """
        field = prefix + self.field if self.field else prefix.rstrip(".")
        return StatsInputError(self.message, field=field)
