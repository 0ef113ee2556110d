"""Streams (a source with a retention policy), uploads with and without timestamps,
file uploads, and the errors of each, against a real kairosd."""

from __future__ import annotations

import datetime as dt
import gzip
import time
from pathlib import Path

import pytest

from kairosd_client import Client, KairosdError
from kairosd_client import times

DAY = 86_400_000


def test_upload_with_and_without_timestamps(client: Client, name: str) -> None:
    stream = client.create_stream(name, source={"tags": ["host"]})
    assert stream.name == name and stream.retention_policy == "0" and stream.prefix == name + "."
    before = times.now_ms()
    summary = stream.upload([
        {"host": "a", "cpu": 1.5},                                   # arrival time
        {"host": "b", "cpu": 2, "timestamp": 1_700_000_000_000},     # its own (ms)
        {"host": "c", "cpu": 3, "timestamp": dt.datetime(2023, 11, 14, 22, 13, 21)},
    ])
    after = times.now_ms()
    assert summary["status"] == "done" and summary["points_written"] == 3, summary
    assert summary["quarantine_rows"] == 0 and summary["error"] is None
    by_host = {s.group["host"]: s.values for s in client.query(name + ".cpu", 0, group_by="host")}
    [(ts_a, va)] = by_host["a"]
    assert before <= ts_a <= after and va == 1.5, (before, ts_a, after)
    assert by_host["b"] == [(1_700_000_000_000, 2)]
    assert by_host["c"] == [(1_700_000_001_000, 3)]
    # One event, and a generator (streamed with chunked encoding).
    assert stream.upload({"host": "d", "cpu": 4})["points_written"] == 1
    gen = ({"host": "e", "cpu": i, "timestamp": 1_700_000_000_000 + i} for i in range(5000))
    assert stream.upload(gen)["points_written"] == 5000
    assert len(client.query(name + ".cpu", 0, tags={"host": "e"})[0].values) == 5000


def test_default_mapping_and_arrival_only_streams(client: Client, name: str) -> None:
    s = client.create_stream(name)  # every field a value, tagged stream=<name>
    assert s.upload([{"a": 1, "b": 2}])["points_written"] == 2
    [r] = client.query(name + ".b", "1h")
    assert r.tags == {"stream": [name]} and r.values[0][1] == 2
    # timestamp None: every event takes the arrival time, even one with a field "timestamp".
    s2 = client.create_stream(name + "-arr", source={"timestamp": None, "tags": ["h"], "values": ["v"]})
    t = times.now_ms()
    assert s2.upload({"h": "x", "v": 1})["points_written"] == 1
    [r] = client.query(name + "-arr.v", "1h")
    assert r.values[0][0] >= t - 1000
    # An explicit event_time instead of the arrival time.
    at = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
    assert s2.upload({"h": "y", "v": 2}, event_time=at)["points_written"] == 1
    [r] = client.query(name + "-arr.v", at, end=at, tags={"h": "y"})
    assert r.values == [(1_714_979_289_000, 2)]


def test_quarantined_events_are_reported_not_raised(client: Client, name: str) -> None:
    s = client.create_stream(name, source={"tags": ["host"], "values": ["v"]})
    out = s.upload([{"host": "a", "v": 1}, {"host": "a", "v": "abc"}])
    assert out["points_written"] == 1 and out["quarantine_rows"] == 1, out
    assert out["errors"][0]["kind"] == "bad_value" and out["errors"][0]["line"] == 2, out["errors"]
    # Nothing usable: 422 with the row errors, nothing committed.
    with pytest.raises(KairosdError) as e:
        s.upload([{"host": "b", "v": "x"}])
    assert e.value.status == 422
    assert e.value.errors[0]["kind"] == "bad_value", e.value.errors
    assert "line 1" in str(e.value)
    assert e.value.body["rows"] == 1


def test_retention_policy_expires_the_stream(client: Client, name: str) -> None:
    s = client.create_stream(name, retention_policy="1d", source={"tags": ["host"], "values": ["v"]})
    assert s.retention_policy == "1d"
    assert name + "." not in client.retention_policies(), "a stream needs no prefix policy"
    old = times.now_ms() - 2 * DAY
    out = s.upload([{"host": "a", "v": 1, "timestamp": old}, {"host": "a", "v": 2}])
    assert out["points_written"] == 1, out
    assert out["errors"][0]["kind"] == "beyond_retention", out
    assert out["errors"][0]["message"].startswith("line 1: timestamp "), out["errors"]
    # A point stored under the stream's metrics another way is not the stream's.
    client.put(name + ".v", 3, {"host": "z"}, timestamp=old)
    assert [r.group for r in client.query(name + ".v", 0, group_by="host")] == [{"host": "a"}, {"host": "z"}]
    s.delete()
    with pytest.raises(KairosdError) as e:
        client.stream(name)
    assert e.value.status == 404


def test_a_streams_points_expire_by_event_time(client: Client, name: str) -> None:
    s = client.create_stream(name, retention_policy="2s", source={"tags": ["host"], "values": ["v"]})
    now = times.now_ms()
    out = s.upload([{"host": "a", "v": 1, "timestamp": now - 1000}, {"host": "a", "v": 2, "timestamp": now + 60000}])
    assert out["points_written"] == 2, out
    assert len(client.query(name + ".v", 0, end=now + 120000)[0].values) == 2
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        left = [v for r in client.query(name + ".v", 0, end=now + 120000) for v in r.values]
        if len(left) < 2:
            break
        time.sleep(0.1)
    assert left == [(now + 60000, 2)], left


def test_timedelta_retention(client: Client, name: str) -> None:
    s = client.create_stream(name, retention_policy=dt.timedelta(hours=36))
    assert s.retention_policy == "36h" and client.stream(name).retention_policy == "36h"


def test_stream_errors(client: Client, name: str) -> None:
    with pytest.raises(KairosdError) as e:
        client.create_stream(name, retention_policy="7 days")
    assert e.value.status == 400
    assert any("retention" in x and "7 days" in x for x in e.value.errors), e.value.errors
    with pytest.raises(KairosdError):
        client.stream(name)  # nothing was created
    with pytest.raises(KairosdError) as e:
        client.create_stream(name, source={"tags": ["a"], "values": ["a"]})
    assert e.value.status == 400 and "mapped twice" in str(e.value), e.value.errors
    s = client.create_stream(name)
    with pytest.raises(KairosdError) as e:
        client.create_stream(name)
    assert e.value.status == 409
    s.delete()
    with pytest.raises(KairosdError) as e:
        s.upload({"a": 1})
    assert e.value.status == 404 and "does not exist" in e.value.errors[0], e.value.errors
    # A body far larger than the socket buffers, refused before it is read: the
    # daemon's 404 still comes through, and the client goes on working.
    with pytest.raises(KairosdError) as e:
        s.upload({"a": i, "pad": "x" * 200} for i in range(20000))
    assert e.value.status == 404, e.value
    assert client.version()


def test_upload_file_plain_gzipped_compressed_and_replace(client: Client, name: str, tmp_path: Path) -> None:
    client.create_stream(name, source={"timestamp": "time", "tags": ["station"], "values": ["temp"]})
    csv = tmp_path / "w.csv"
    csv.write_text("time,station,temp\n1700000000,s1,20.5\n1700000060,s1,abc\n")
    out = client.upload_file(csv, source=name)
    assert (out["format"], out["points_written"], out["quarantine_rows"]) == ("csv", 1, 1), out
    gz = tmp_path / "w2.ndjson.gz"
    gz.write_bytes(gzip.compress(b'{"time":1700000120,"station":"s1","temp":21}\n'))
    out = client.upload_file(gz, source=name)
    assert (out["format"], out["compression"], out["points_written"]) == ("ndjson", "gzip", 1), out
    big = tmp_path / "big.csv"
    big.write_text("time,station,temp\n" + "".join("%d,s2,%d\n" % (1700000000 + i, i) for i in range(20000)))
    out = client.upload_file(big, source=name, gzip=True)
    assert out["points_written"] == 20000 and out["compression"] == "gzip", out
    [r] = client.query(name + ".temp", 1_700_000_000_000, end=1_700_000_200_000, tags={"station": "s1"})
    assert r.values == [(1_700_000_000_000, 20.5), (1_700_000_120_000, 21)]
    # Replace s1's 100 s from 22:13:20 (its 20.5; the 21 at 22:15:20 stays) with one row.
    repl = tmp_path / "r.csv"
    repl.write_text("time,station,temp\n1700000030,s1,99\n")
    out = client.upload_file(repl, source=name, mode="replace", replace_start=1_700_000_000_000,
                             replace_end=dt.datetime(2023, 11, 14, 22, 15, 0), replace_tag="station:s1")
    assert out["mode"] == "replace" and out["points_replaced"] == 1, out
    [r] = client.query(name + ".temp", 1_700_000_000_000, end=1_700_000_200_000, tags={"station": "s1"})
    assert r.values == [(1_700_000_030_000, 99), (1_700_000_120_000, 21)]
    # Errors: an unknown source, a file that is not there, a replace without a range.
    with pytest.raises(KairosdError) as e:
        client.upload_file(csv, source=name + "-nope")
    assert e.value.status == 404
    with pytest.raises(FileNotFoundError):
        client.upload_file(tmp_path / "missing.csv", source=name)
    with pytest.raises(KairosdError) as e:
        client.upload_file(repl, source=name, mode="replace")
    assert e.value.status == 400, e.value.errors
