"""A small HTTP/1.1 transport over ``http.client`` (standard library only).

Why not ``urllib.request``: it opens a new connection per request, and a client that
calls ``put`` in a loop would pay a TCP handshake per point. This keeps one keep-alive
connection per :class:`Transport` (requests are serialised by a lock, so one client may
be shared by threads), sends streaming bodies with chunked encoding, asks for gzip
answers and turns every non-2xx answer into a :class:`KairosdError` carrying the
server's ``errors`` list.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import socket
import threading
import zlib
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple, Union
from urllib.parse import quote, unquote, urlencode, urlsplit

from .errors import KairosdError

Body = Union[None, bytes, Iterable[bytes]]


class Response:
    """A decoded answer: status, headers (lower-case names) and the body bytes."""

    def __init__(self, status: int, reason: str, headers: Dict[str, str], data: bytes) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.data = data

    def json(self) -> Any:
        """The body as JSON (``None`` for an empty body)."""
        if not self.data:
            return None
        return json.loads(self.data.decode("utf-8"))

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def path(*parts: str) -> str:
    """Joins URL path segments, each percent-encoded whole (a ``/`` in a name stays one
    segment, as the daemon decodes it)."""
    return "/" + "/".join(quote(p, safe="") for p in parts)


class Transport:
    """One base URL, one keep-alive connection, a timeout per socket operation."""

    def __init__(self, url: str, timeout: float, headers: Optional[Mapping[str, str]] = None) -> None:
        parts = urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme not in ("http", "https"):
            raise ValueError("kairosd URL must be http:// or https://, not %r" % (url,))
        if not parts.hostname:
            raise ValueError("kairosd URL %r names no host" % (url,))
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base = parts.path.rstrip("/")
        self.timeout = timeout
        self.headers: Dict[str, str] = {"Accept-Encoding": "gzip", "User-Agent": "kairosd-client-python"}
        if parts.username is not None:
            cred = "%s:%s" % (unquote(parts.username), unquote(parts.password or ""))
            self.headers["Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
        self.headers.update(headers or {})
        self._conn: Optional[http.client.HTTPConnection] = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return "%s://%s:%d%s" % (self.scheme, self.host, self.port, self.base)

    def _connect(self) -> http.client.HTTPConnection:
        if self.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout
            )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout, blocksize=65536)
        return conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def request(
        self,
        method: str,
        target: str,
        query: Optional[Mapping[str, Any]] = None,
        body: Body = None,
        headers: Optional[Mapping[str, str]] = None,
        ok: Tuple[int, ...] = (200, 201, 202, 204),
    ) -> Response:
        """Sends one request and returns the answer, or raises :class:`KairosdError`.

        A ``bytes`` body is sent with a length and retried once on a fresh connection
        if a kept-alive one turns out closed (kairosd closes idle ones; resending points
        or an append import is harmless: the last write wins with the same value). An
        iterable body is streamed with chunked encoding on a fresh connection, since it
        cannot be sent twice.
        """
        url = self.base + target
        if query:
            url += "?" + urlencode([(k, _param(v)) for k, v in query.items() if v is not None])
        all_headers = dict(self.headers)
        all_headers.update(headers or {})
        with self._lock:
            replayable = body is None or isinstance(body, (bytes, bytearray))
            for attempt in (0, 1):
                reused = self._conn is not None
                if not replayable and reused:
                    self._conn.close()  # type: ignore[union-attr]
                    self._conn = None
                    reused = False
                if self._conn is None:
                    self._conn = self._connect()
                conn = self._conn
                try:
                    resp = self._exchange(conn, method, url, body, all_headers)
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                    conn.close()
                    self._conn = None
                    if reused and replayable and attempt == 0:
                        continue
                    raise KairosdError(
                        "connection to kairosd at %s closed during %s %s: %s" % (self.url, method, target, e),
                        errors=["connection closed: %s" % (e,)],
                    ) from None
                except socket.timeout:
                    conn.close()
                    self._conn = None
                    raise KairosdError(
                        "kairosd at %s gave no answer to %s %s within %s s" % (self.url, method, target, self.timeout),
                        errors=["timed out after %s s" % self.timeout],
                    ) from None
                except (OSError, http.client.HTTPException) as e:
                    conn.close()
                    self._conn = None
                    raise KairosdError(
                        "cannot reach kairosd at %s (%s %s): %s" % (self.url, method, target, e),
                        errors=[str(e)],
                    ) from None
                break
        if resp.status not in ok:
            raise _error(resp, method, target)
        return resp

    def _exchange(
        self,
        conn: http.client.HTTPConnection,
        method: str,
        url: str,
        body: Body,
        headers: Dict[str, str],
    ) -> Response:
        chunked = body is not None and not isinstance(body, (bytes, bytearray))
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        try:
            conn.request(method, url, body=body, headers=headers, encode_chunked=chunked)
        except (BrokenPipeError, ConnectionResetError) as sending:
            # The daemon may answer before it has read the whole body (an unknown
            # source, a body over the limit): its answer is the useful error.
            try:
                r = conn.getresponse()
            except Exception:
                raise sending from None
            return self._read(conn, r)
        return self._read(conn, conn.getresponse())

    @staticmethod
    def _read(conn: http.client.HTTPConnection, r: http.client.HTTPResponse) -> Response:
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if hdrs.get("content-encoding", "").lower() == "gzip" and data:
            data = gzip.decompress(data)
        if r.will_close:
            conn.close()
        return Response(r.status, r.reason, hdrs, data)


def _param(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _error(resp: Response, method: str, target: str) -> KairosdError:
    body: Any = None
    errors = None
    try:
        body = resp.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        errors = body["errors"]
    elif resp.data:
        errors = [resp.text()]
    else:
        errors = ["%s %s: %d %s" % (method, target, resp.status, resp.reason)]
    shown = []
    for e in errors:
        if isinstance(e, dict):
            where = ", ".join("%s %s" % (k, e[k]) for k in ("line", "column") if e.get(k) is not None)
            shown.append("%s%s" % (where + ": " if where else "", e.get("message", json.dumps(e))))
        else:
            shown.append(str(e))
    if isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"] not in shown:
        shown.insert(0, body["error"])
    return KairosdError("; ".join(shown), status=resp.status, errors=errors, body=body)


def gzip_chunks(chunks: Iterable[bytes], level: int = 6) -> Iterable[bytes]:
    """Compresses a stream of byte chunks as one gzip member, lazily."""
    z = zlib.compressobj(level, zlib.DEFLATED, 31)
    for c in chunks:
        out = z.compress(c)
        if out:
            yield out
    yield z.flush()


