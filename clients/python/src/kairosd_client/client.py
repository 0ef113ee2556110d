"""The client: one object per kairosd, holding one keep-alive HTTP connection."""

from __future__ import annotations

import gzip as _gzip
import json
import os
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from . import times
from ._http import Transport, gzip_chunks, path
from .errors import KairosdError
from .query import Aggregator, GroupBy, Number, Series, metric_body
from .streams import Stream, mapping
from .tables import SCHEMA, Table, check_name

PointLike = Union[
    Tuple[str, Number, Mapping[str, Any]],
    Tuple[str, Number, Mapping[str, Any], Optional[times.Timestamp]],
    Mapping[str, Any],
]
"""``(metric, value, tags[, timestamp])`` or ``{"metric": ..., "value": ..., "tags": ...,
"timestamp": ..., "ttl": ...}`` (``name`` is accepted for ``metric``)."""


def _check_value(metric: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("metric %r: a value is an int or a float, not %r" % (metric, value))
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise ValueError("metric %r: NaN and infinities cannot be stored (kairosd refuses them)" % metric)


def _tags(metric: str, tags: Optional[Mapping[str, Any]]) -> Dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise TypeError("metric %r: tags are a mapping of name to value, not %r" % (metric, tags))
    return {str(k): str(v) for k, v in tags.items()}


class Client:
    """A kairosd (or KairosDB) server.

    ``url`` is the HTTP API's base, e.g. ``http://localhost:8080`` (``user:pass@`` in it
    sends basic auth). ``timeout`` bounds each connect and each read, in seconds.
    ``gzip=True`` compresses request bodies of ``put_many`` and uploads (worth it over
    a network; not on loopback). Every refusal raises :class:`KairosdError`.
    """

    def __init__(
        self,
        url: str = "http://localhost:8080",
        timeout: float = 30.0,
        gzip: bool = False,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        self._t = Transport(url, timeout, headers)
        self.gzip = gzip

    @property
    def url(self) -> str:
        return self._t.url

    def close(self) -> None:
        """Closes the kept-alive connection (the next request opens a new one)."""
        self._t.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "Client(%r)" % self.url

    # --- health and names -------------------------------------------------------

    def version(self) -> str:
        """The server's version string (``/api/v1/version``)."""
        return str((self._t.request("GET", "/api/v1/version").json() or {}).get("version", ""))

    def metric_names(self, prefix: Optional[str] = None) -> List[str]:
        """Metric names with at least one visible point, optionally under a prefix."""
        r = self._t.request("GET", "/api/v1/metricnames", query={"prefix": prefix} if prefix else None)
        return list((r.json() or {}).get("results", []))

    # --- writing points ---------------------------------------------------------

    def put(
        self,
        metric: str,
        value: Number,
        tags: Mapping[str, Any],
        timestamp: Optional[times.Timestamp] = None,
        ttl: Optional[int] = None,
    ) -> None:
        """Writes one point; when this returns it is in the daemon's write-ahead log.

        ``timestamp`` is epoch ms or a ``datetime`` (``None``: now). ``ttl`` is in
        seconds from now (KairosDB's per-point ttl). For many points use
        :meth:`put_many`: one request per point costs a round trip each.
        """
        self.put_many([{"metric": metric, "value": value, "tags": tags, "timestamp": timestamp, "ttl": ttl}])

    def put_many(self, points: Iterable[PointLike], batch_size: int = 50_000) -> int:
        """Writes points in as few requests as possible; returns how many were sent.

        Points of one series (metric, tags, ttl) share one metric object, and a
        request carries at most ``batch_size`` points, so a large iterable (even a
        generator) goes as several bodies of bounded size. Each request is acknowledged
        only once its points are durable. If one fails, the :class:`KairosdError`
        says how many points earlier requests stored; KairosDB's rule also keeps the
        valid metric objects of the failing body (its ``errors`` list the others).
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        sent = 0
        group: Dict[Tuple[str, Tuple[Tuple[str, str], ...], Optional[int]], List[List[Any]]] = {}
        n = 0
        for p in points:
            metric, value, tags, ts, ttl = self._point(p)
            key = (metric, tuple(sorted(tags.items())), ttl)
            group.setdefault(key, []).append([ts, value])
            n += 1
            if n >= batch_size:
                self._post_points(group, sent)
                sent += n
                group, n = {}, 0
        if n:
            self._post_points(group, sent)
            sent += n
        return sent

    @staticmethod
    def _point(p: PointLike) -> Tuple[str, Number, Dict[str, str], int, Optional[int]]:
        ttl: Optional[int] = None
        if isinstance(p, Mapping):
            metric = p.get("metric", p.get("name"))
            if not isinstance(metric, str):
                raise TypeError("a point needs a metric name: %r" % (dict(p),))
            value, tags, ts, ttl = p.get("value"), p.get("tags"), p.get("timestamp"), p.get("ttl")
        elif isinstance(p, (tuple, list)) and len(p) in (3, 4):
            metric, value, tags = p[0], p[1], p[2]
            ts = p[3] if len(p) == 4 else None
        else:
            raise TypeError("a point is (metric, value, tags[, timestamp]) or a dict, not %r" % (p,))
        if not isinstance(metric, str):
            raise TypeError("a metric name is a string, not %r" % (metric,))
        _check_value(metric, value)
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0):
            raise ValueError("metric %r: ttl is whole seconds >= 0, not %r" % (metric, ttl))
        return metric, value, _tags(metric, tags), times.timestamp_ms(ts), ttl  # type: ignore[return-value]

    def _post_points(self, group: Mapping[Tuple[str, Tuple[Tuple[str, str], ...], Optional[int]], List[List[Any]]], before: int) -> None:
        body = []
        for (metric, tags, ttl), dps in group.items():
            obj: Dict[str, Any] = {"name": metric, "tags": dict(tags), "datapoints": dps}
            if ttl is not None:
                obj["ttl"] = ttl
            body.append(obj)
        data = json.dumps(body, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.gzip:
            data = _gzip.compress(data, 6)
            headers["Content-Encoding"] = "gzip"
        try:
            self._t.request("POST", "/api/v1/datapoints", body=data, headers=headers)
        except KairosdError as e:
            if before:
                e.message += " (%d points of earlier requests were stored)" % before
                e.args = (e.message,)
            raise

    # --- queries ----------------------------------------------------------------

    def query(
        self,
        metric: str,
        start: times.TimeSpec,
        end: Optional[times.TimeSpec] = None,
        tags: Optional[Mapping[str, Any]] = None,
        aggregators: Optional[Sequence[Aggregator]] = None,
        group_by: Optional[GroupBy] = None,
        limit: Optional[int] = None,
        order: Optional[str] = None,
    ) -> List[Series]:
        """Points of ``metric`` from ``start`` to ``end`` (inclusive; ``None``: now).

        ``start``/``end``: epoch ms, a ``datetime``, an RFC 3339 string, or a time
        before now (``"1h"``, ``timedelta(hours=1)``, ``{"value": 1, "unit": "hours"}``).
        ``tags``: ``{"host": "web1"}`` or ``{"host": ["web1", "web2"]}`` (OR within a tag,
        AND across tags). ``aggregators``: names (``"sum"``) or objects
        (:func:`kairosd_client.aggregator`). ``group_by``: a tag name, a list of tag
        names, or KairosDB's group_by objects. Returns one :class:`Series` per group
        that has points (an empty list when nothing matched).
        """
        body: Dict[str, Any] = times.bound("start", start)
        if end is not None:
            body.update(times.bound("end", end))
        body["metrics"] = [metric_body(metric, tags, aggregators, group_by, limit, order)]
        out = self.query_raw(body)
        series: List[Series] = []
        for q in out.get("queries", []):
            for r in q.get("results", []):
                if r.get("values"):
                    series.append(Series.from_result(r))
        return series

    def query_raw(self, body: Mapping[str, Any]) -> Dict[str, Any]:
        """Posts a KairosDB query body as is and returns the decoded answer."""
        data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")
        r = self._t.request("POST", "/api/v1/datapoints/query", body=data, headers={"Content-Type": "application/json"})
        return r.json() or {}

    # --- retention --------------------------------------------------------------

    def retention_policies(self) -> Dict[str, str]:
        """Every retention policy: metric name prefix → retention (``"7d"``; ``"0"`` forever)."""
        r = self._t.request("GET", "/api/v1/retention").json() or {}
        return {p["prefix"]: p["retention"] for p in r.get("results", [])}

    def set_retention(self, prefix: str, retention: Union[str, int, Any]) -> None:
        """Keeps points of metrics under ``prefix`` for ``retention`` (``"30d"``, a
        ``timedelta``, ``"0"`` forever); the longest matching prefix wins."""
        body = json.dumps({"prefix": prefix, "retention": times.retention(retention)}).encode("utf-8")
        self._t.request("PUT", "/api/v1/retention", body=body, headers={"Content-Type": "application/json"})

    def remove_retention(self, prefix: str) -> None:
        """Removes the policy of exactly ``prefix`` (404 if there is none)."""
        self._t.request("DELETE", "/api/v1/retention", query={"prefix": prefix})

    # --- streams and imports ----------------------------------------------------

    def create_stream(
        self,
        name: str,
        retention_policy: Union[None, str, Any] = None,
        source: Optional[Mapping[str, Any]] = None,
    ) -> Stream:
        """Creates the stream ``name`` and returns it.

        ``retention_policy``: how long its points are kept (``"30d"``, ``"12h"``, a
        ``timedelta``; ``None`` forever). ``source``: how event fields map to points,
        the daemon's source JSON with shorthands (see
        :func:`kairosd_client.streams.mapping`); left out, every field but
        ``timestamp`` becomes a metric ``<name>.<field>`` tagged ``stream=<name>``.
        Raises :class:`KairosdError` with the daemon's list of every problem in the
        mapping or the retention (400), or 409 if the stream exists.
        """
        spec = mapping(name, source)
        spec["retention"] = times.retention(retention_policy)
        r = self._t.request(
            "POST",
            "/api/v1/sources",
            body=json.dumps(spec).encode("utf-8"),
            headers={"Content-Type": "application/json"},
        )
        return Stream(self, r.json())

    def stream(self, name: str) -> Stream:
        """The existing stream (source) ``name``; :class:`KairosdError` 404 if none."""
        return Stream(self, self._t.request("GET", "/api/v1/sources" + path(name)).json())

    def upload_file(
        self,
        file: Union[str, "os.PathLike[str]"],
        source: str,
        mode: str = "append",
        format: Optional[str] = None,
        gzip: Optional[bool] = None,
        **params: Any,
    ) -> Dict[str, Any]:
        """Imports a file (CSV, TSV, NDJSON, JSON, Parquet, KairosDB JSON; gzipped or
        not) through source ``source`` as one atomic import; returns its summary.

        The file is streamed, never read whole. Its format comes from ``format``, else
        its name, else the daemon sniffs it; a gzipped file is detected by its bytes.
        ``gzip=True`` compresses on the way (default: the client's ``gzip``; a file
        already gzipped is sent as is). ``mode="replace"`` takes ``replace_start``,
        ``replace_end`` (ms, ``datetime`` or RFC 3339), ``replace_tag="k:v"`` or
        ``replace_all=True``; other keyword arguments are import parameters
        (``on_error``, ``max_errors``, ``event_time``, ``dry_run``).
        Rows quarantined beside accepted ones do not raise: read ``quarantine_rows``
        and ``errors`` in the summary. :class:`KairosdError` when nothing was
        committed (4xx: unknown source 404, bad mapping 400, nothing usable 422).
        """
        p = os.fspath(file)
        # Ask first, so a wrong source name is a clear 404 rather than a connection
        # the daemon closed in the middle of a large body.
        self._t.request("GET", "/api/v1/sources" + path(source))
        query: Dict[str, Any] = {"source": source, "mode": mode, "file": os.path.basename(p)}
        if format is not None:
            query["format"] = format
        for k in ("replace_start", "replace_end", "event_time"):
            v = params.get(k)
            if v is not None and not isinstance(v, str):
                params[k] = times.timestamp_ms(v)
        query.update(params)
        with open(p, "rb") as f:
            head = f.read(2)
            f.seek(0)
            compress = (self.gzip if gzip is None else gzip) and head != b"\x1f\x8b"
            return self._import(query, _read_chunks(f), compress=compress)

    def _import(self, query: Mapping[str, Any], body: Any, compress: Optional[bool] = None) -> Dict[str, Any]:
        headers = {"Content-Type": "application/octet-stream"}
        if compress is None:
            compress = self.gzip
        if compress:
            body = gzip_chunks([body] if isinstance(body, bytes) else body)
            headers["Content-Encoding"] = "gzip"
        r = self._t.request("POST", "/api/v1/import", query=query, body=body, headers=headers)
        return r.json() or {}

    # --- tables -----------------------------------------------------------------

    def create_table(self, name: str, primary_key: str, exist_ok: bool = False) -> Table:
        """Creates the keyed table ``name`` whose rows are keyed by field ``primary_key``.

        A table that exists raises :class:`KairosdError` (``status`` None: the client
        found it) unless ``exist_ok`` and its primary key is the same.
        """
        check_name(name)
        if not isinstance(primary_key, str) or not primary_key:
            raise ValueError("table %r: primary_key is a field name, not %r" % (name, primary_key))
        existing = self._schema(name)
        if existing is not None:
            if exist_ok and existing == primary_key:
                return Table(self, name, primary_key)
            raise KairosdError(
                "table %r already exists (primary key %r)" % (name, existing),
                errors=["table %r already exists (primary key %r)" % (name, existing)],
            )
        self._t.request(
            "POST",
            "/api/v1/metadata" + path(name, SCHEMA, "primary_key"),
            body=primary_key.encode("utf-8"),
            headers={"Content-Type": "text/plain"},
        )
        return Table(self, name, primary_key)

    def table(self, name: str, version: Optional[int] = None) -> Table:
        """The existing table ``name``, or its frozen ``version``."""
        service = name if version is None else "%s@%d" % (name, version)
        pk = self._schema(service)
        if pk is None:
            what = "table %r" % name if version is None else "version %d of table %r" % (version, name)
            raise KairosdError("%s does not exist" % what, errors=["%s does not exist" % what])
        return Table(self, name, pk, version)

    def _schema(self, service: str) -> Optional[str]:
        r = self._t.request("GET", "/api/v1/metadata" + path(service, SCHEMA, "primary_key"))
        return r.text() or None


def _read_chunks(f: Any, size: int = 1 << 20) -> Iterator[bytes]:
    while True:
        b = f.read(size)
        if not b:
            return
        yield b
