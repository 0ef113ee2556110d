#!/usr/bin/env bash
# Runs every cargo-fuzz target for DURATION seconds each, one after the other (the box has
# two cores; pass JOBS=2 to run two at once), and lists what they found.
#
#   scripts/fuzz.sh 900                 # every target, 15 minutes each
#   scripts/fuzz.sh 60 chunk staging    # some targets
#
# The targets build on the stable toolchain (RUSTC_BOOTSTRAP=1, no sanitizer, as the
# README says). Corpora grow in protocols/fuzz/corpus/<target>, crash inputs land in
# protocols/fuzz/artifacts/<target>; copy a crash input into
# protocols/fuzz/regressions/<target>/ so `cargo test -p kairos-protocols` replays it.
set -euo pipefail
cd "$(dirname "$0")/../protocols"
duration="${1:?usage: scripts/fuzz.sh DURATION_SECONDS [TARGET...]}"
shift
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --quiet cargo-fuzz
export RUSTC_BOOTSTRAP=1
if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi
jobs="${JOBS:-1}"
cargo fuzz build --sanitizer none --release
log_dir="fuzz/logs"
mkdir -p "$log_dir"
run() {
  local t="$1"
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  local seeds=()
  [ -d "fuzz/seeds/$t" ] && seeds=("fuzz/seeds/$t")
  # Kept crash inputs start every run, so the fuzzer works outward from past findings.
  [ -d "fuzz/regressions/$t" ] && seeds+=("fuzz/regressions/$t")
  echo "fuzzing $t for ${duration}s (log: protocols/$log_dir/$t.log)"
  cargo fuzz run --sanitizer none --release "$t" "fuzz/corpus/$t" "${seeds[@]}" -- \
    -max_total_time="$duration" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    >"$log_dir/$t.log" 2>&1 || echo "  $t stopped with a finding: see protocols/$log_dir/$t.log"
  grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$log_dir/$t.log" | tail -1 | sed "s/^/  $t: /" || true
}
running=0
for t in "${targets[@]}"; do
  run "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait
found=$(find fuzz/artifacts -type f 2>/dev/null | wc -l)
echo "crash inputs under protocols/fuzz/artifacts: $found"
find fuzz/artifacts -type f 2>/dev/null | sed 's/^/  /'
[ "$found" -eq 0 ]
