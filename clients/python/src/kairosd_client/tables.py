"""Keyed tables on KairosDB's metadata API (``/api/v1/metadata``).

A table ``t`` with primary key ``id`` is the metadata service ``t``: each row is stored
under service key ``rows`` and key ``str(row["id"])`` as the row's JSON, and the primary
key's name under ``schema``/``primary_key``, so any KairosDB metadata client can read the
rows and :meth:`Client.table` can reopen a table without being told its key again.

:meth:`Table.make_immutable` freezes the table at a version (the daemon copies it to the
read-only service ``t@N`` in one atomic write). The :class:`Table` then reads that frozen
copy and every write through it is refused by the daemon (409), so code that holds the
handle cannot change what was frozen; the live table ``t`` stays writable through
``client.table("t")``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional

from ._http import path
from .errors import KairosdError

if TYPE_CHECKING:
    from .client import Client

ROWS = "rows"
SCHEMA = "schema"


def check_name(name: str) -> None:
    """Table names the metadata API can hold as a live service."""
    if not isinstance(name, str) or not name:
        raise ValueError("a table name is a non-empty string, not %r" % (name,))
    if name.startswith("_"):
        raise ValueError("table %r: names starting with '_' are KairosDB's internal metadata namespace" % name)
    if "@" in name:
        raise ValueError("table %r: '@' is reserved for frozen versions (name@version)" % name)


def dumps(value: Any) -> str:
    """JSON for a row: compact, NaN refused (it is not JSON), datetimes as ISO 8601."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False, default=_default)


def _default(o: Any) -> Any:
    import datetime

    if isinstance(o, (datetime.datetime, datetime.date)):
        return o.isoformat()
    raise TypeError("%r (%s) cannot be stored as JSON" % (o, type(o).__name__))


class Table:
    """A keyed table; rows are JSON objects, one per primary key value."""

    def __init__(self, client: "Client", name: str, primary_key: str, version: Optional[int] = None) -> None:
        self._client = client
        self.name = name
        self.primary_key = primary_key
        self.version = version
        """The frozen version this handle reads, or ``None`` for the live table."""

    @property
    def service(self) -> str:
        """The metadata service the rows live in (``name`` or ``name@version``)."""
        return self.name if self.version is None else "%s@%d" % (self.name, self.version)

    @property
    def immutable(self) -> bool:
        return self.version is not None

    def __repr__(self) -> str:
        return "Table(%r, primary_key=%r%s)" % (
            self.name,
            self.primary_key,
            "" if self.version is None else ", version=%d" % self.version,
        )

    def _key(self, key: Any) -> str:
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise TypeError("table %r: a primary key value is a string or an int, not %r" % (self.name, key))
        text = str(key)
        if not text:
            raise ValueError("table %r: the primary key value may not be empty" % self.name)
        return text

    def insert(self, row: Mapping[str, Any]) -> None:
        """Stores ``row`` under its primary key value; a row with that key is replaced
        whole (durable when this returns). Raises :class:`KairosdError` (409) once the
        handle is frozen."""
        if not isinstance(row, Mapping):
            raise TypeError("table %r: a row is a mapping (dict), not %r" % (self.name, row))
        if self.primary_key not in row:
            raise KeyError("table %r: the row has no primary key field %r" % (self.name, self.primary_key))
        key = self._key(row[self.primary_key])
        body = dumps(dict(row)).encode("utf-8")
        self._client._t.request(
            "POST",
            "/api/v1/metadata" + path(self.service, ROWS, key),
            body=body,
            headers={"Content-Type": "application/json"},
        )

    def get(self, key: Any) -> Optional[Dict[str, Any]]:
        """The row with primary key value ``key``, or ``None``."""
        r = self._client._t.request("GET", "/api/v1/metadata" + path(self.service, ROWS, self._key(key)))
        if not r.data:
            return None
        try:
            value = json.loads(r.data.decode("utf-8"))
        except ValueError:
            raise KairosdError(
                "table %r: the value under key %r is not a JSON row (written by another client?)" % (self.name, key),
                body=r.text(),
            ) from None
        if not isinstance(value, dict):
            raise KairosdError(
                "table %r: the value under key %r is not a JSON object (written by another client?)" % (self.name, key),
                body=value,
            )
        return value

    def delete(self, key: Any) -> None:
        """Removes one row (no error if there is none)."""
        self._client._t.request("DELETE", "/api/v1/metadata" + path(self.service, ROWS, self._key(key)))

    def keys(self, starts_with: Optional[str] = None) -> List[str]:
        """The primary key values, sorted as strings, optionally only those with a prefix."""
        r = self._client._t.request(
            "GET",
            "/api/v1/metadata" + path(self.service, ROWS),
            query={"startsWith": starts_with} if starts_with else None,
        )
        return list((r.json() or {}).get("results", []))

    def make_immutable(self, version: int) -> "Table":
        """Freezes the table's current rows as ``version`` and turns this handle into a
        read-only view of them: later ``insert``/``delete`` calls raise
        :class:`KairosdError` with status 409. A version is frozen once (409 again).
        Returns ``self``."""
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise ValueError("a version is a whole number >= 0, not %r" % (version,))
        self._client._t.request(
            "POST",
            "/api/v1/metadata" + path(self.service, "_snapshot"),
            query={"version": version},
            body=b"",
        )
        self.version = version
        return self
