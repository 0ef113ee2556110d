"""A real kairosd for the tests: ``target/release/kairosd serve`` (or ``$KAIROSD_BIN``)
on a temporary data directory with every port ``127.0.0.1:0``; the bound ports come
from the daemon's first stdout line (``kairosd ready telnet=... http=...``). The
client under test is the source tree's (``src/``), so an older installed copy never
stands in for it."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, List

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from kairosd_client import Client  # noqa: E402

REPO = HERE.parents[2]


class Daemon:
    def __init__(self, data_dir: Path, extra: List[str]) -> None:
        binary = os.environ.get("KAIROSD_BIN") or str(REPO / "target" / "release" / "kairosd")
        if not os.path.exists(binary):
            raise RuntimeError(
                "no kairosd binary at %s: run `cargo build --release` or set KAIROSD_BIN" % binary
            )
        args = [binary, "serve"]
        for kv in [
            "kairosd.data_dir=%s" % data_dir,
            "kairosdb.telnetserver.address=127.0.0.1",
            "kairosdb.telnetserver.port=0",
            "kairosdb.jetty.address=127.0.0.1",
            "kairosdb.jetty.port=0",
            "kairosdb.carbon.text.address=127.0.0.1",
            "kairosdb.carbon.text.port=0",
            "kairosdb.carbon.pickle.address=127.0.0.1",
            "kairosdb.carbon.pickle.port=0",
        ] + extra:
            args += ["--set", kv]
        env = dict(os.environ, RUST_LOG="warn")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.log: List[str] = []
        threading.Thread(target=self._drain, daemon=True).start()
        line = self._ready_line(deadline=time.monotonic() + 60)
        fields = dict(w.split("=", 1) for w in line.split()[2:] if "=" in w)
        self.http = fields["http"]
        self.telnet = fields["telnet"]
        self.url = "http://" + self.http

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.log.append(raw.decode("utf-8", "replace").rstrip())
            if os.environ.get("KAIROSD_TEST_LOG"):
                sys.stderr.write("[kairosd] %s\n" % self.log[-1])

    def _ready_line(self, deadline: float) -> str:
        assert self.proc.stdout is not None
        got: List[str] = []
        reader = threading.Thread(target=lambda: got.append(self.proc.stdout.readline().decode()), daemon=True)
        reader.start()
        reader.join(max(0.0, deadline - time.monotonic()))
        if not got or not got[0].startswith("kairosd ready"):
            self.stop()
            raise RuntimeError("kairosd did not start: %r\n%s" % (got[:1], "\n".join(self.log[-20:])))
        return got[0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("kairosd") / "data", [])
    yield d
    d.stop()


@pytest.fixture()
def client(daemon: Daemon) -> Iterator[Client]:
    c = Client(daemon.url, timeout=30)
    yield c
    c.close()


_ids = itertools.count()


@pytest.fixture()
def name(request: pytest.FixtureRequest) -> str:
    """A name no other test uses, for metrics, streams and tables on the shared daemon."""
    return "t%d_%s" % (next(_ids), request.node.name.replace("[", "_").replace("]", "")[:40])


def wait_for(fn, timeout: float = 20.0, interval: float = 0.05):
    """Polls ``fn`` until it returns something truthy or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)
