"""Streams: a named source with a retention policy, fed with events.

A stream ``orders`` is the daemon's source ``orders``: its mapping from event fields to
points, and its ``retention``. The daemon quarantines events older than the retention
(``beyond_retention``) and gives every point a stream writes the expiry
``timestamp + retention``, so the stream's points leave queries and the disk by event
time, and points of the same metrics written another way keep theirs.

Events get the time they arrive unless they carry one: every upload asks the daemon to
stamp events without a timestamp with the time it reads the request
(``event_time=now``), so timestamps come from the daemon's clock, as in StreamSQL.
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Mapping, Optional, Union

from . import times
from ._http import path

if TYPE_CHECKING:
    from .client import Client

Events = Union[Mapping[str, Any], Iterable[Mapping[str, Any]], str, bytes]


def mapping(name: str, source: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The daemon's source JSON for stream ``name`` from ``source``.

    ``source`` is the daemon's source JSON (see the README) without ``name`` and
    ``retention``, with shorthands: ``"timestamp": "ts"`` (the field holding the event
    time; ``None``: always the arrival time), ``"tags": ["host"]`` (fields that become
    tags), ``"values": ["temp"]`` or ``"*"`` (fields that become points), ``"prefix"``.
    Left out: the timestamp is the ``timestamp`` field (any format the daemon detects),
    every other field is a value, metrics are named ``<stream>.<field>``, and points are
    tagged ``stream=<stream>`` (KairosDB refuses points without a tag).
    """
    src: Dict[str, Any] = dict(source or {})
    for k in ("name", "retention"):
        if k in src:
            raise ValueError(
                "source[%r]: a stream's %s comes from create_stream's arguments" % (k, k)
            )
    ts = src.pop("timestamp", "timestamp")
    if ts is None or isinstance(ts, str):
        ts = {"column": ts, "format": "auto"} if ts is not None else {"column": None}
    metric = dict(src.pop("metric", {}) or {})
    if "values" in src:
        metric["value_columns"] = src.pop("values")
    if "prefix" in src:
        metric["prefix"] = src.pop("prefix")
    metric.setdefault("prefix", name + ".")
    if "value_columns" not in metric and "name_column" not in metric:
        metric["value_columns"] = "*"
    tags = src.pop("tags", None)
    if tags is None:
        tags = {"static": {"stream": name}}
    elif isinstance(tags, (list, tuple)):
        tags = {"columns": list(tags)}
    out: Dict[str, Any] = {"name": name, "timestamp": ts, "metric": metric, "tags": tags}
    out.update(src)
    return out


def _event_default(o: Any) -> Any:
    if isinstance(o, _dt.datetime):
        return times.datetime_ms(o)
    if isinstance(o, _dt.date):
        return o.isoformat()
    raise TypeError("%r (%s) cannot be sent as JSON" % (o, type(o).__name__))


def ndjson(events: Iterable[Mapping[str, Any]], chunk: int = 1 << 16) -> Iterator[bytes]:
    """Events as NDJSON in chunks of about ``chunk`` bytes, lazily (a generator of
    events streams without being held in memory). A ``datetime`` value is sent as
    epoch ms (naive = UTC)."""
    buf: List[bytes] = []
    size = 0
    for n, e in enumerate(events):
        if not isinstance(e, Mapping):
            raise TypeError("event %d is not a mapping (dict): %r" % (n, e))
        line = json.dumps(e, separators=(",", ":"), allow_nan=False, default=_event_default) + "\n"
        b = line.encode("utf-8")
        buf.append(b)
        size += len(b)
        if size >= chunk:
            yield b"".join(buf)
            buf, size = [], 0
    if buf:
        yield b"".join(buf)


class Stream:
    """A stream handle; :meth:`Client.create_stream` or :meth:`Client.stream` make one."""

    def __init__(self, client: "Client", source: Dict[str, Any]) -> None:
        self._client = client
        self.source = source
        """The source as the daemon stored it (with its ``version``)."""

    @property
    def name(self) -> str:
        return str(self.source["name"])

    @property
    def retention_policy(self) -> str:
        return str(self.source.get("retention", "0"))

    @property
    def prefix(self) -> str:
        return str((self.source.get("metric") or {}).get("prefix", ""))

    def __repr__(self) -> str:
        return "Stream(%r, retention_policy=%r)" % (self.name, self.retention_policy)

    def upload(self, event_or_events: Events, format: str = "json", **params: Any) -> Dict[str, Any]:
        """Imports events into the stream as one atomic import; returns its summary
        (``rows``, ``points_written``, ``quarantine_rows``, ``errors``, ...).

        ``format="json"``: one mapping or an iterable of them, sent as NDJSON (streamed,
        so a generator is never held whole). Any other format the daemon reads (``csv``,
        ``tsv``, ``ndjson``, ``kairosdb``) takes the payload as ``str``/``bytes``.
        Events without a timestamp get the time the daemon receives them. Extra
        keyword arguments are import parameters (``on_error="abort"``,
        ``dry_run=True``, ``event_time=<ms>`` instead of the arrival time).
        Raises :class:`KairosdError` if nothing was usable (422) or the stream does
        not exist (404); rows quarantined beside accepted ones do not raise.
        """
        if format == "json":
            if isinstance(event_or_events, (str, bytes)):
                raise TypeError("format='json' takes a dict or an iterable of dicts; pass text with format='ndjson'")
            events = [event_or_events] if isinstance(event_or_events, Mapping) else event_or_events
            body: Any = ndjson(events)
            wire = "ndjson"
        else:
            if isinstance(event_or_events, str):
                body = event_or_events.encode("utf-8")
            elif isinstance(event_or_events, bytes):
                body = event_or_events
            else:
                raise TypeError("format=%r takes the payload as str or bytes" % (format,))
            wire = format
        query: Dict[str, Any] = {"source": self.name, "format": wire, "event_time": "now"}
        if params.get("event_time") is not None and not isinstance(params["event_time"], str):
            params["event_time"] = times.timestamp_ms(params["event_time"])
        query.update(params)
        return self._client._import(query, body)

    def upload_file(self, file: str, mode: str = "append", **params: Any) -> Dict[str, Any]:
        """:meth:`Client.upload_file` into this stream."""
        return self._client.upload_file(file, source=self.name, mode=mode, **params)

    def delete(self) -> None:
        """Removes the stream's source (its points stay until they expire or are
        deleted)."""
        self._client._t.request("DELETE", "/api/v1/sources" + path(self.name))
