"""put / put_many / query against a real kairosd, and the errors of each."""

from __future__ import annotations

import datetime as dt
import socket

import pytest

from conftest import wait_for
from kairosd_client import Client, KairosdError, aggregator
from kairosd_client import times

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def test_put_then_query_every_start_form(client: Client, name: str) -> None:
    now = times.now_ms()
    client.put(name, 1, {"host": "a"}, timestamp=now - 120_000)
    client.put(name, 2.5, {"host": "a"}, timestamp=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1))
    client.put(name, 3, {"host": "a"})  # now
    for start in ["1h", "60 minutes", {"value": 1, "unit": "hours"}, dt.timedelta(hours=1), now - 3_600_000,
                  dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)]:
        [s] = client.query(name, start)
        assert [v for _, v in s.values] == [1, 2.5, 3], start
        assert s.name == name and s.tags == {"host": ["a"]}
    [s] = client.query(name, now - 130_000, end=now - 110_000)
    assert s.values == [(now - 120_000, 1)]
    assert isinstance(s.values[0][1], int)


def test_timestamps_datetime_naive_is_utc_and_rfc3339_bounds(client: Client, name: str) -> None:
    client.put(name, 7, {"k": "v"}, timestamp=dt.datetime(2023, 11, 14, 22, 13, 20))
    client.put(name, 8, {"k": "v"}, timestamp=dt.datetime(2023, 11, 15, 0, 13, 20, tzinfo=dt.timezone(dt.timedelta(hours=2))))
    [s] = client.query(name, "2023-11-14T22:00:00Z", end="2023-11-14T23:00:00+00:00")
    assert s.values == [(T0, 8)], "naive datetime = UTC; +02:00 is the same instant: last write wins"
    client.put(name, 9, {"k": "v"}, timestamp=T0 + 1)
    [s] = client.query(name, T0, end=T0 + 1)
    assert s.values == [(T0, 8), (T0 + 1, 9)]


def test_put_many_batches_groups_and_splits(client: Client, name: str) -> None:
    points = ((name, i, {"host": "h%d" % (i % 3)}, T0 + i * 1000) for i in range(2500))
    assert client.put_many(points, batch_size=1000) == 2500
    series = client.query(name, T0, end=T0 + 3_000_000, group_by="host")
    assert sorted(s.group["host"] for s in series) == ["h0", "h1", "h2"]
    assert sum(len(s.values) for s in series) == 2500
    h1 = next(s for s in series if s.group == {"host": "h1"})
    assert h1.values[:2] == [(T0 + 1000, 1), (T0 + 4000, 4)]
    # Dicts, ttl, and aggregators over the whole range.
    client.put_many([{"name": name + ".d", "value": 1.5, "tags": {"x": "1"}, "timestamp": T0, "ttl": 0},
                     {"metric": name + ".d", "value": 2.5, "tags": {"x": 1}, "timestamp": T0 + 1}])
    [s] = client.query(name + ".d", T0, end=T0 + 10, aggregators=[aggregator("sum", "1h", align_sampling=False)])
    assert s.values == [(T0, 4.0)]
    [s] = client.query(name, T0, end=T0 + 3_000_000, tags={"host": ["h0", "h2"]}, aggregators=["count"])
    assert sum(v for _, v in s.values) == 1667


def test_gzip_bodies(daemon, name: str) -> None:
    with Client(daemon.url, gzip=True) as c:
        c.put_many([(name, i, {"z": "1"}, T0 + i) for i in range(100)])
        [s] = c.query(name, T0, end=T0 + 1000)
        assert len(s.values) == 100


def test_ttl_hides_points_when_it_passes(client: Client, name: str) -> None:
    client.put(name, 1, {"h": "a"}, ttl=3)
    client.put(name, 2, {"h": "b"})
    assert [s.group for s in client.query(name, "1h", group_by="h")] == [{"h": "a"}, {"h": "b"}]
    gone = wait_for(lambda: [s.group for s in client.query(name, "1h", group_by="h")] == [{"h": "b"}], timeout=30)
    assert gone, client.query(name, "1h", group_by="h")


def test_bad_metric_raises_with_the_server_errors(client: Client, name: str) -> None:
    with pytest.raises(KairosdError) as e:
        client.put(name, 1, {})
    assert e.value.status == 400
    assert any("tags" in str(x) for x in e.value.errors), e.value.errors
    with pytest.raises(KairosdError) as e:
        client.put("", 1, {"a": "b"})
    assert e.value.status == 400 and e.value.errors, e.value.errors
    # Partial success, as KairosDB: the valid object of the body is kept.
    with pytest.raises(KairosdError):
        client.put_many([(name, 5, {"a": "b"}, T0), (name + ".bad", 1, {}, T0)])
    [s] = client.query(name, T0, end=T0)
    assert s.values == [(T0, 5)]


def test_client_side_refusals(client: Client, name: str) -> None:
    with pytest.raises(TypeError, match="milliseconds"):
        client.put(name, 1, {"a": "b"}, timestamp=1700000000.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaN"):
        client.put(name, float("nan"), {"a": "b"})
    with pytest.raises(TypeError):
        client.put(name, True, {"a": "b"})
    with pytest.raises(ValueError, match="relative time"):
        client.query(name, "an hour")


def test_bad_query_raises_400_with_kairosdb_text(client: Client, name: str) -> None:
    with pytest.raises(KairosdError) as e:
        client.query(name, "1h", aggregators=[{"name": "nope"}])
    assert e.value.status == 400
    assert "aggregators" in e.value.errors[0], e.value.errors
    assert client.query(name + ".none", "1h") == []


def test_unreachable_server_raises_without_status() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(KairosdError) as e:
        Client("http://127.0.0.1:%d" % port, timeout=5).version()
    assert e.value.status is None and "cannot reach" in str(e.value)


def test_version_and_metric_names(client: Client, name: str) -> None:
    assert "kairos" in client.version().lower()
    client.put(name + ".m", 1, {"a": "b"})
    assert name + ".m" in client.metric_names(prefix=name)


def test_keep_alive_survives_a_closed_connection(client: Client, name: str) -> None:
    client.put(name, 1, {"a": "b"}, timestamp=T0)
    # Simulate the daemon closing an idle kept-alive connection.
    assert client._t._conn is not None and client._t._conn.sock is not None
    client._t._conn.sock.shutdown(socket.SHUT_RDWR)
    client.put(name, 2, {"a": "b"}, timestamp=T0 + 1)
    [s] = client.query(name, T0, end=T0 + 1)
    assert s.values == [(T0, 1), (T0 + 1, 2)]


def test_a_server_that_never_answers_times_out() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)  # accepts into the backlog, never answers
    try:
        with pytest.raises(KairosdError) as e:
            Client("http://127.0.0.1:%d" % s.getsockname()[1], timeout=0.5).version()
        assert e.value.status is None and "no answer" in str(e.value), str(e.value)
    finally:
        s.close()
