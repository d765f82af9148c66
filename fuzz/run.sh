#!/usr/bin/env bash
# Coverage-guided fuzzing of depmig's hostile-input parsers with afl.rs:
# installs the pinned cargo-afl (and the AFL++ it builds) under $DEPMIG_CACHE,
# builds the targets instrumented, runs each for SECONDS, prints afl-fuzz's
# figures per target, and exits non-zero when any target saved a crash.
#
# usage: fuzz/run.sh [SECONDS] [TARGET...]
#   SECONDS  afl-fuzz's time limit per target (-V), default 30
#   TARGET   stream, xenstore, walker, netfront, report, verify, twohost
#            (default: all, one after another)
# environment:
#   FUZZ_OUT=DIR         afl-fuzz's output directories (default fuzz/out); each
#                        run starts afresh from fuzz/seeds/<target>
#   FUZZ_TIMEOUT_MS=N    one execution longer than this is a hang (default 2000)
#   FUZZ_TARGET_DIR=DIR  the instrumented build (default $DEPMIG_CACHE/fuzz-target)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$root/scripts/lib.sh"

# cargo-afl and the `afl` crate in fuzz/Cargo.toml must be the same version.
AFL_VERSION=0.18.2
ALL_TARGETS=(stream xenstore walker netfront report verify twohost)

secs=${1:-30}
[ $# -gt 0 ] && shift
[[ $secs =~ ^[1-9][0-9]*$ ]] || die "SECONDS must be a positive whole number, not '$secs'"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
    [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || die "unknown target '$t' (${ALL_TARGETS[*]})"
done
out_root=${FUZZ_OUT:-$here/out}
timeout_ms=${FUZZ_TIMEOUT_MS:-2000}
target_dir=${FUZZ_TARGET_DIR:-$DEPMIG_CACHE/fuzz-target}

# AFL++ is built from the source inside the cargo-afl-common crate: make and a
# C compiler.
need_pkgs make gcc libc6-dev

# cargo-afl keeps AFL++ under the XDG data directory, per rustc version.
afl_root=$DEPMIG_CACHE/cargo-afl
export XDG_DATA_HOME=$afl_root/share
export PATH=$afl_root/bin:$PATH
# Inside the checkout: the toolchain pinned in rust-toolchain.toml.
cd "$root"

if ! cargo afl --version 2>/dev/null | grep -qF "$AFL_VERSION"; then
    log "installing cargo-afl $AFL_VERSION into $afl_root (builds AFL++ too)"
    cargo install cargo-afl --locked --version "$AFL_VERSION" --root "$afl_root" >&2 \
        || die "cargo install cargo-afl failed"
fi
# Installing builds AFL++ for the rustc of that moment, and only warns if
# that fails: check, and build it for this rustc if it is missing.
rustc_id=$(rustc -vV | awk '/^release:/ { r = $2 } /^commit-hash:/ { h = substr($2, 1, 7) } END { print "rustc-" r "-" h }')
afl_data=$XDG_DATA_HOME/afl.rs/$rustc_id/afl.rs-$AFL_VERSION
if [ ! -x "$afl_data/afl/bin/afl-fuzz" ] || [ ! -f "$afl_data/afl-llvm/afl-compiler-rt.o" ]; then
    log "building AFL++ for $rustc_id (cargo afl config --build)"
    cargo afl config --build --force >&2 || die "cargo afl config --build failed"
fi

log "building fuzz targets: ${targets[*]}"
bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
CARGO_TARGET_DIR=$target_dir cargo afl build --release --locked \
    --manifest-path "$here/Cargo.toml" "${bins[@]}" >&2 \
    || die "cargo afl build failed"

# afl-fuzz in a container: no CPU frequency governor to check, core dumps may
# go nowhere, and the cores are shared with other work (no pinning).
export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_NO_AFFINITY=1 AFL_FAST_CAL=1

# stat FILE KEY: a value of afl-fuzz's fuzzer_stats.
stat() { awk -F' *: *' -v k="$2" '$1 == k { print $2 }' "$1"; }

failed=0
summary=()
for t in "${targets[@]}"; do
    out=$out_root/$t
    rm -rf "$out"
    mkdir -p "$out_root"
    log "fuzzing $t for ${secs}s (output in $out)"
    # The time limit is afl-fuzz's; the outer one only catches a stuck start.
    rc=0
    timeout --kill-after=30 $((secs + 300)) \
        cargo afl fuzz -i "$here/seeds/$t" -o "$out" -V "$secs" -t "$timeout_ms" \
        -- "$target_dir/release/$t" > "$out_root/$t.log" 2>&1 || rc=$?
    stats=$out/default/fuzzer_stats
    if [ ! -f "$stats" ]; then
        tail -n 30 "$out_root/$t.log" >&2
        log "$t: afl-fuzz did not start (exit $rc); its log: $out_root/$t.log"
        failed=1
        summary+=("$t: did not run")
        continue
    fi
    crashes=$(stat "$stats" saved_crashes)
    line=$(printf '%s: %s execs (%s/s), corpus %s, coverage %s, crashes %s, hangs %s' \
        "$t" "$(stat "$stats" execs_done)" "$(stat "$stats" execs_per_sec)" \
        "$(stat "$stats" corpus_count)" "$(stat "$stats" bitmap_cvg)" \
        "$crashes" "$(stat "$stats" saved_hangs)")
    summary+=("$line")
    printf '%s\n' "$line"
    if [ "${crashes:-0}" != 0 ]; then
        failed=1
        log "$t crashed; replay a file with: $target_dir/release/$t < FILE"
        files=("$out"/default/crashes/id:*)
        printf '    %s\n' "${files[@]:0:10}" >&2
        [ "${#files[@]}" -le 10 ] || log "(${#files[@]} crash files in all, in $out/default/crashes)"
    fi
done

log "summary (${secs}s per target):"
printf '  %s\n' "${summary[@]}" >&2
[ "$failed" = 0 ] || die "a fuzz target crashed or did not run"
