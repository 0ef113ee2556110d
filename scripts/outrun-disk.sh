#!/usr/bin/env bash
# Senders outrun the disk: kairosd's data directory on a write-throttled device, a small
# kairosd.writer.max_inflight_points, and kairosd-loadgen pushing points far faster than
# the device takes them. The daemon must slow the senders down (TCP backpressure), not
# buffer what the disk cannot take: its peak RSS must stay under a bound set by its
# configuration, whatever the size of the backlog on the senders' side.
#
#   sudo scripts/outrun-disk.sh                      # defaults below
#   POINTS=4000000 WRITE_BPS=$((1<<20)) sudo scripts/outrun-disk.sh
#
# The device: a loop-mounted ext4 image, mounted `sync`, throttled with cgroup v1 blkio
# (blkio.throttle.write_bps_device / write_iops_device). v1 throttling sees only I/O its
# tasks submit themselves; ordinary buffered writes are written back later by kernel
# flusher threads outside the cgroup and would escape it. Mounted `sync`, every write
# kairosd makes (WAL appends, memtable flushes, compactions) is submitted by the kairosd
# thread that makes it, and is throttled.
#
# Needs root (losetup, mount, cgroup) and the release binaries (`cargo build --release`).
# Prints the loadgen's JSON line, the sampled RSS peak, the bytes the device took, and
# the bound; exits non-zero if the peak passed the bound or the loadgen failed.
set -euo pipefail
cd "$(dirname "$0")/.."

POINTS="${POINTS:-6000000}"
SERIES="${SERIES:-10000}"
CONNS="${CONNS:-8}"
PROTO="${PROTO:-telnet}"
INFLIGHT="${INFLIGHT:-20000}"
READ_BUFFERS="${READ_BUFFERS:-$((16 << 20))}"
WRITE_BPS="${WRITE_BPS:-$((1 << 20))}"
WRITE_IOPS="${WRITE_IOPS:-200}"
IMAGE_MB="${IMAGE_MB:-2048}"
WORK="${WORK:-/tmp/kairosd-outrun}"
BIN="${BIN:-target/release}"

[ "$(id -u)" = 0 ] || { echo "outrun-disk: needs root (losetup, mount, cgroup)" >&2; exit 2; }
[ -d /sys/fs/cgroup/blkio ] || { echo "outrun-disk: no cgroup v1 blkio hierarchy at /sys/fs/cgroup/blkio" >&2; exit 2; }
for b in kairosd kairosd-loadgen; do
  [ -x "$BIN/$b" ] || { echo "outrun-disk: $BIN/$b missing: cargo build --release" >&2; exit 2; }
done

# The bound, from what the configuration lets the daemon hold (MiB):
#   points memtables   4 x 64   (write_buffer_size x max_write_buffer_number, storage/mod.rs)
#   staging memtables  2 x 16
#   the other column families' memtables (series, index, names, meta): 6 x 2 x 16, of
#   which a 10,000-series load fills a few MiB; counted at 32
#   TCP read buffers   kairosd.ingest.max_buffered_bytes (set here)
#   in-flight points   kairosd.writer.max_inflight_points x 256 bytes (point + series key)
#   base               96 (code, allocator arenas, threads' stacks, RocksDB block cache
#                      and table readers, the series dictionary of 10,000 series)
bound_mb=$((256 + 32 + 32 + READ_BUFFERS / 1048576 + (INFLIGHT * 256 + 1048575) / 1048576 + 96))

mkdir -p "$WORK"
img="$WORK/disk.img"
mnt="$WORK/mnt"
cg="/sys/fs/cgroup/blkio/kairosd-outrun-$$"
loop=""
cleanup() {
  set +e
  if [ -n "${sampler:-}" ]; then kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null; fi
  mountpoint -q "$mnt" && umount "$mnt"
  [ -n "$loop" ] && losetup -d "$loop"
  [ -d "$cg" ] && rmdir "$cg"
  rm -f "$img"
}
trap cleanup EXIT

rm -f "$img"
truncate -s "${IMAGE_MB}M" "$img"
mkfs.ext4 -q -F "$img"
loop=$(losetup -f --show "$img")
mkdir -p "$mnt"
mount -o sync "$loop" "$mnt"
devno=$(cat "/sys/block/$(basename "$loop")/dev")
mkdir "$cg"
echo "$devno $WRITE_BPS" >"$cg/blkio.throttle.write_bps_device"
echo "$devno $WRITE_IOPS" >"$cg/blkio.throttle.write_iops_device"
echo "outrun-disk: $loop ($devno) on $mnt, writes throttled to $((WRITE_BPS / 1024)) KiB/s and $WRITE_IOPS IO/s"
echo "outrun-disk: $POINTS $PROTO points over $CONNS connections, max_inflight_points=$INFLIGHT, ingest.max_buffered_bytes=$READ_BUFFERS"

out="$WORK/loadgen.json"
timeline="$WORK/rss.tsv"
# The loadgen (and the kairosd it starts) join the cgroup before the daemon exists.
sh -c 'echo $$ >"$1/cgroup.procs"; shift; exec "$@"' sh "$cg" \
  "$BIN/kairosd-loadgen" --points "$POINTS" --series "$SERIES" --conns "$CONNS" --proto "$PROTO" \
  --work "$mnt" --max-seconds 3000 \
  --set "kairosd.writer.max_inflight_points=$INFLIGHT" \
  --set "kairosd.ingest.max_buffered_bytes=$READ_BUFFERS" >"$out" &
loadgen=$!

# Sample the daemon's RSS twice a second until the loadgen ends (it stops the daemon
# before `kairosd compact`; the loadgen's own VmHWM reading is printed too).
(
  printf 's\trss_mib\tdevice_written_mib\n'
  t0=$(date +%s)
  while kill -0 "$loadgen" 2>/dev/null; do
    pid=$(pgrep -P "$loadgen" -x kairosd | head -1 || true)
    if [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; then
      rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
      wr=$(awk -v d="$devno" '$1 == d && $2 == "Write" {print $3}' "$cg/blkio.throttle.io_service_bytes" 2>/dev/null || true)
      [ -n "$rss" ] && printf '%s\t%s\t%s\n' "$(($(date +%s) - t0))" "$((rss / 1024))" "$(((${wr:-0}) / 1048576))"
    fi
    sleep 0.5
  done
) >"$timeline" &
sampler=$!

status=0
wait "$loadgen" || status=$?
wait "$sampler" || true
sampler=""

written=$(awk -v d="$devno" '$1 == d && $2 == "Write" {print $3}' "$cg/blkio.throttle.io_service_bytes")
peak=$(awk 'NR > 1 && $2 > m {m = $2} END {print m + 0}' "$timeline")
samples=$(($(wc -l <"$timeline") - 1))
echo "outrun-disk: loadgen: $(cat "$out")"
echo "outrun-disk: RSS sampled $samples times (timeline: $timeline): peak ${peak} MiB"
echo "outrun-disk: the device took $((written / 1048576)) MiB of writes"
echo "outrun-disk: bound ${bound_mb} MiB (memtables 320 + read buffers $((READ_BUFFERS / 1048576)) + in-flight points $(((INFLIGHT * 256 + 1048575) / 1048576)) + base 96)"
hwm=$(sed -n 's/.*"peak_rss_mb":\([0-9.]*\).*/\1/p' "$out")
[ "$status" = 0 ] || { echo "outrun-disk: the loadgen failed (status $status)" >&2; exit 1; }
over=$(awk -v p="$peak" -v h="${hwm:-0}" -v b="$bound_mb" 'BEGIN {print (p > b || h > b) ? 1 : 0}')
if [ "$over" = 1 ]; then
  echo "outrun-disk: peak RSS passed the bound" >&2
  exit 1
fi
echo "outrun-disk: peak RSS ${hwm:-?} MiB (VmHWM) / ${peak} MiB (sampled), under the ${bound_mb} MiB bound"
