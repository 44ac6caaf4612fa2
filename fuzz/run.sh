#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS_PER_TARGET (default 60) on its corpus:
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
# The reproducers in fuzz/artifacts/<target>/ are run with the corpus. New inputs libFuzzer finds
# go to a scratch directory (the committed corpus stays small); a crash is written to
# fuzz/artifacts/<target>/ and ends the script with an error. A summary
# line per target (time, executions, coverage, corpus) is printed at the end.
#
# Stable Rust only: cargo-fuzz passes the compiler nightly-only flags (-Zsanitizer... is not
# used: `-s none`; the coverage passes and `--cfg fuzzing` are), which RUSTC_BOOTSTRAP=1 lets
# the stable compiler take. cargo-fuzz is installed from crates.io when missing; libFuzzer is
# built from C++ by libfuzzer-sys, so a C++ compiler is needed (Debian: g++).
#
#   fuzz/run.sh replay
# is what CI runs, in seconds and without cargo-fuzz: each target built as a plain debug binary
# (debug assertions and overflow checks on, no coverage instrumentation) into the workspace's
# target directory, where it reuses the test build's dependencies, then run once over its corpus
# and every kept reproducer (libFuzzer's -runs=0). A reproducer that crashes again, or a seed
# that now fails a target's checks, fails the run. It does not search for new inputs: libFuzzer
# without coverage feedback stops at once (that is the SECONDS form above).
set -euo pipefail
cd "$(dirname "$0")"

if [[ ${1:-} == replay ]]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$(cd .. && pwd)/target} CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
  cargo build --locked --bins
  status=0
  for source in fuzz_targets/*.rs; do
    target=$(basename "$source" .rs)
    inputs=(corpus/"$target")
    [[ -d artifacts/$target ]] && inputs+=(artifacts/"$target")
    count=$(find "${inputs[@]}" -type f | wc -l)
    log=$(mktemp)
    # A crash's copy goes to /tmp, not into the working directory.
    if "$CARGO_TARGET_DIR/debug/$target" -runs=0 -timeout=60 -artifact_prefix="$log-" \
      "${inputs[@]}" >"$log" 2>&1; then
      echo "fuzz replay $target: $count inputs, all pass"
    else
      echo "fuzz replay $target: FAILED on one of its $count inputs"
      grep -E 'panicked|ERROR|SUMMARY|Test unit written|Running:' "$log" | head -20 || tail -n 30 "$log"
      status=1
    fi
    rm -f "$log"
  done
  exit "$status"
fi

seconds=${1:-60}
shift || true
export RUSTC_BOOTSTRAP=1 CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

if ! command -v c++ >/dev/null 2>&1; then
  echo "fuzz/run.sh: installing a C++ compiler for libFuzzer (g++)"
  apt-get update -qq && apt-get install -y -qq g++ >/dev/null
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: installing cargo-fuzz"
  cargo install cargo-fuzz --locked --version 0.13.2
fi
# cargo-fuzz has no --locked: check here that Cargo.lock needs no change.
cargo metadata --locked --format-version 1 >/dev/null

# GOVDC_FUZZ_TARGET_DIR: where the instrumented build goes (fuzz/target by default; CI keeps
# it outside its fresh clone, so that a second run on a machine rebuilds only our crates).
target_dir=()
if [[ -n ${GOVDC_FUZZ_TARGET_DIR:-} ]]; then
  target_dir=(--target-dir "$GOVDC_FUZZ_TARGET_DIR")
fi
cargo fuzz build -s none "${target_dir[@]}"
# The binaries are run directly, not through `cargo fuzz run`, which checks the build again
# before each target: a source edited meanwhile would rebuild govdc-operator (release, most of
# half an hour here) between two targets, and the targets would not all fuzz the same code.
bin_dir="${GOVDC_FUZZ_TARGET_DIR:-target}/$(rustc -vV | sed -n 's/^host: //p')/release"
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  for source in fuzz_targets/*.rs; do targets+=("$(basename "$source" .rs)"); done
fi

summary=()
status=0
passed=0
failed=0
for target in "${targets[@]}"; do
  scratch=$(mktemp -d)
  log="$scratch/log"
  mkdir -p "artifacts/$target"
  echo "== fuzz $target for ${seconds}s ($(date -u +%H:%M:%S))"
  # -timeout: an input that takes longer is a hang, reported like a crash.
  rc=0
  # artifacts/<target>/ too: every reproducer kept runs again, so a fixed crash stays fixed.
  mkdir -p "$scratch/corpus"
  "$bin_dir/$target" "$scratch/corpus" "corpus/$target" "artifacts/$target" \
    -artifact_prefix="artifacts/$target/" \
    -max_total_time="$seconds" -timeout=60 -print_final_stats=1 >"$log" 2>&1 || rc=$?
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$log" || true
  if [[ $rc -ne 0 ]]; then
    echo "fuzz $target: FAILED (exit $rc); the reproducer is in fuzz/artifacts/$target/"
    grep -E 'panicked|ERROR|SUMMARY|Test unit written|error' "$log" | head -20 || tail -n 30 "$log"
    status=1
    failed=$((failed + 1))
  else
    passed=$((passed + 1))
  fi
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
  cov=$(grep -oE '^#[0-9]+[[:space:]]+DONE +cov: [0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
  inited=$(grep -oE '^#[0-9]+[[:space:]]+INITED +cov: [0-9]+' "$log" | grep -oE '[0-9]+$' | head -1 || echo '?')
  summary+=("$target: ${seconds}s, $runs executions, coverage $inited at start -> $cov")
  rm -rf "$scratch"
done
printf '\n== fuzz summary\n'
printf '%s\n' "${summary[@]}"
echo "fuzz: $passed passed, $failed failed"
exit "$status"
