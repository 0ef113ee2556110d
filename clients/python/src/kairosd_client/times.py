"""Time values as kairosd's API takes them.

Data points carry epoch milliseconds (KairosDB's REST rule: no seconds guessing), and
queries take either an absolute time (ms) or a relative one
(``{"value": 1, "unit": "hours"}``). Python code holds ``datetime`` objects, ``timedelta``
objects and short strings like ``"1h"``; this module turns each into the one form the
daemon reads, and refuses anything ambiguous (a float could be seconds or ms) rather
than guessing. A naive ``datetime`` is taken as UTC, as the daemon reads a timestamp
without an offset, so the same wall time means the same instant on both sides.
"""

from __future__ import annotations

import datetime as _dt
import re
import time
from typing import Any, Dict, Mapping, Optional, Union

Timestamp = Union[int, _dt.datetime]
"""Epoch milliseconds or a ``datetime`` (naive = UTC)."""

TimeSpec = Union[int, _dt.datetime, _dt.timedelta, str, Mapping[str, Any]]
"""A query bound: ms or ``datetime`` (absolute), or ``"1h"``, ``timedelta`` or
``{"value": 1, "unit": "hours"}`` (that long before now), or an RFC 3339 string."""

_UNITS = {
    "ms": "milliseconds",
    "millisecond": "milliseconds",
    "milliseconds": "milliseconds",
    "s": "seconds",
    "sec": "seconds",
    "second": "seconds",
    "seconds": "seconds",
    "m": "minutes",
    "min": "minutes",
    "minute": "minutes",
    "minutes": "minutes",
    "h": "hours",
    "hour": "hours",
    "hours": "hours",
    "d": "days",
    "day": "days",
    "days": "days",
    "w": "weeks",
    "week": "weeks",
    "weeks": "weeks",
    "mo": "months",
    "month": "months",
    "months": "months",
    "y": "years",
    "year": "years",
    "years": "years",
}

_RELATIVE = re.compile(r"^\s*(\d+)\s*([A-Za-z]+)\s*$")

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def datetime_ms(value: _dt.datetime) -> int:
    """Epoch milliseconds of ``value``; a naive ``datetime`` is UTC (see module doc)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def timestamp_ms(value: Optional[Timestamp]) -> int:
    """A data point's timestamp: ``None`` is now, an int is already ms.

    Floats are refused: ``time.time()`` gives seconds, and KairosDB's REST API reads
    every number as ms, so a silent pass would land points in January 1970.
    """
    if value is None:
        return now_ms()
    if isinstance(value, _dt.datetime):
        return datetime_ms(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(
        "a timestamp must be epoch milliseconds (int), a datetime or None (now), not %r"
        % (value,)
    )


def relative(value: Union[str, _dt.timedelta, Mapping[str, Any]]) -> Dict[str, Any]:
    """``"1h"``, ``"30 minutes"``, ``"2w"``, ``timedelta`` or KairosDB's own dict, as
    ``{"value": n, "unit": "<plural unit>"}``. ``M`` (capital) is months, ``m`` minutes."""
    if isinstance(value, _dt.timedelta):
        ms = value // _dt.timedelta(milliseconds=1)
        if ms <= 0:
            raise ValueError("a relative time must be positive, not %r" % (value,))
        return {"value": ms, "unit": "milliseconds"}
    if isinstance(value, Mapping):
        if set(value) - {"value", "unit"} or "value" not in value or "unit" not in value:
            raise ValueError(
                'a relative time is {"value": n, "unit": "hours"}, not %r' % (dict(value),)
            )
        return {"value": value["value"], "unit": value["unit"]}
    if isinstance(value, str):
        m = _RELATIVE.match(value)
        if m:
            n, unit = int(m.group(1)), m.group(2)
            name = "months" if unit == "M" else _UNITS.get(unit.lower())
            if name is not None:
                return {"value": n, "unit": name}
        raise ValueError(
            "%r is not a relative time such as '90s', '15m', '1h', '7d', '2w', '3M' (months) or '1y'"
            % (value,)
        )
    raise TypeError("not a relative time: %r" % (value,))


def _iso(value: str) -> Optional[int]:
    """Epoch ms of an RFC 3339 / ISO 8601 string, or None if it is not one."""
    if not re.match(r"^\s*\d{4}-\d{2}-\d{2}", value):
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return datetime_ms(_dt.datetime.fromisoformat(text))
    except ValueError:
        raise ValueError("%r is not an RFC 3339 time" % (value,)) from None


def bound(name: str, value: TimeSpec) -> Dict[str, Any]:
    """The query fields for one bound: ``{name}_absolute`` or ``{name}_relative``."""
    if isinstance(value, bool):
        raise TypeError("%s must be a time, not %r" % (name, value))
    if isinstance(value, int):
        return {name + "_absolute": value}
    if isinstance(value, _dt.datetime):
        return {name + "_absolute": datetime_ms(value)}
    if isinstance(value, str):
        ms = _iso(value)
        if ms is not None:
            return {name + "_absolute": ms}
    if isinstance(value, (str, _dt.timedelta, Mapping)):
        return {name + "_relative": relative(value)}
    raise TypeError(
        "%s must be ms, a datetime, an RFC 3339 string, '1h', a timedelta or "
        '{"value": 1, "unit": "hours"}, not %r' % (name, value)
    )


def retention(value: Union[None, str, int, _dt.timedelta]) -> str:
    """A retention as the daemon writes it: ``"0"`` (forever) or ``<n><ms|s|m|h|d|w>``.

    Strings pass through unchanged so the daemon, which owns the rule, names what is
    wrong with a bad one; a ``timedelta`` is written in the largest exact unit.
    """
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value == 0):
        return "0"
    if isinstance(value, str):
        return value
    if isinstance(value, _dt.timedelta):
        ms = value // _dt.timedelta(milliseconds=1)
        if ms <= 0:
            raise ValueError("a retention must be positive (None keeps data forever), not %r" % (value,))
        for unit, size in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
            if ms % size == 0:
                return "%d%s" % (ms // size, unit)
        return "%dms" % ms
    raise TypeError("a retention is a string like '30d', a timedelta, or None (forever), not %r" % (value,))
