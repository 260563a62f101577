#!/usr/bin/env bash
# Runs the coverage-guided fuzz targets of fuzz/ (cargo-fuzz, libFuzzer) for a
# time budget each, two at a time, and reports per target what ran and what
# crashed. Not part of CI, nor of scripts/test.sh.
#
#   ./scripts/fuzz.sh                 # every target, 60 s each
#   ./scripts/fuzz.sh 450             # every target, 450 s each (8 targets, 2 at a time: 30 min)
#   ./scripts/fuzz.sh 30 url rpc_frame  # only these targets
#
# Inputs that grow coverage are kept in fuzz/corpus/<target>/ (git-ignored)
# and reused by the next run; the committed seeds in fuzz/seeds/<target>/ are
# read as well, and fuzz/dicts/<target>.dict when there is one (tokens
# libFuzzer splices in). A crashing input lands in fuzz/artifacts/<target>/ and the
# target's output in fuzz/logs/<target>.log; replay one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/crash-...
# Exits non-zero when any target crashed, leaked, timed out or ran out of memory.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi
all_targets=(rpc_frame rpc_request rpc_response tri_framing tri_headers url zk_children zk_cache_file)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi
for target in "${targets[@]}"; do
    if [ ! -f "fuzz/fuzz_targets/$target.rs" ]; then
        echo "error: no fuzz target '$target' (targets: ${all_targets[*]})" >&2
        exit 2
    fi
done
jobs_at_once=2

# shellcheck source=scripts/lib.sh
. scripts/lib.sh


if ! need cargo; then
    echo "error: cargo is not installed; install Rust from https://rustup.rs first" >&2
    exit 1
fi
# libfuzzer-sys compiles libFuzzer, which is C++.
if ! need c++; then
    apt_install g++ "libfuzzer-sys compiles libFuzzer (C++)"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked
fi

# cargo-fuzz passes nightly-only flags (-Zsanitizer=address and others);
# RUSTC_BOOTSTRAP lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
echo "== building the fuzz targets (release, AddressSanitizer, libFuzzer coverage)"
cargo fuzz build
triple="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="fuzz/target/$triple/release"

# run TARGET: fuzzes one target for $seconds, output in fuzz/logs/TARGET.log.
run() {
    local target="$1"
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target" fuzz/logs
    local dict=()
    if [ -f "fuzz/dicts/$target.dict" ]; then dict=(-dict="fuzz/dicts/$target.dict"); fi
    # -timeout: an input taking 10 s is a hang; -rss_limit_mb: 2 GiB is
    # far beyond any payload limit, so reaching it is unbounded growth.
    "$bin_dir/$target" "fuzz/corpus/$target" "fuzz/seeds/$target" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$target/" "${dict[@]}" >"fuzz/logs/$target.log" 2>&1
}

echo "== fuzzing ${#targets[@]} targets, ${seconds} s each, $jobs_at_once at a time"
started="$(date +%s)"
marker="$(mktemp)"
trap 'rm -f "$marker"' EXIT
running=0
for target in "${targets[@]}"; do
    if [ "$running" -ge "$jobs_at_once" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    echo "   $target"
    run "$target" &
    running=$((running + 1))
done
wait || true

# report: one line per target, from libFuzzer's final stats and the artifacts written by this run.
failed=0
printf '\n%-14s %12s %7s %7s %8s %8s  %s\n' target runs cov ft corpus crashes result
for target in "${targets[@]}"; do
    log="fuzz/logs/$target.log"
    # The last status line ("#N  DONE  cov: C ft: F corp: K/..."), also there after a crash.
    status="$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)"
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    [ -n "$runs" ] || runs="$(sed -E -n 's/^#([0-9]+).*/\1/p' <<<"$status")"
    cov="$(sed -E -n 's/.* cov: ([0-9]+).*/\1/p' <<<"$status")"
    ft="$(sed -E -n 's/.* ft: ([0-9]+).*/\1/p' <<<"$status")"
    corpus="$(find "fuzz/corpus/$target" -type f | wc -l)"
    crashes="$(find "fuzz/artifacts/$target" -type f -newer "$marker" \
        \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)"
    result=ok
    if [ "$crashes" -gt 0 ] || grep -q '^SUMMARY: ' "$log" || ! grep -q '^Done [0-9]* runs' "$log"; then
        result="FAILED: see $log and fuzz/artifacts/$target/"
        failed=1
    fi
    printf '%-14s %12s %7s %7s %8s %8s  %s\n' "$target" "${runs:-?}" "${cov:-?}" "${ft:-?}" "$corpus" "$crashes" "$result"
done
echo "(cov: code edges reached; ft: libFuzzer features; corpus: inputs kept in fuzz/corpus/)"
echo "fuzzed for $(($(date +%s) - started)) s"
exit "$failed"
