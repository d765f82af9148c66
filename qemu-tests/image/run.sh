#!/usr/bin/env bash
# Boots the appliance image under plain QEMU (no Xen) and checks its verdicts:
# the self-test must end with "depmig-selftest: PASS" and exit code 33 on both
# microvm and q35; the deliberate crash and panic modes must end with an
# epitaph, a FAIL line and exit code 37. Prints one verdict line; exits
# non-zero on failure. Serial logs stay under out/image/.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

need_pkgs qemu-system-x86
OUT=out/image
mkdir -p "$OUT"
log "image: cargo build --release -p depmig-appliance"
cargo build --release --locked -p depmig-appliance
IMG=${CARGO_TARGET_DIR:-target}/release/depmig-appliance
[ -f "$IMG" ] || die "image: $IMG was not built"
TIMEOUT=${DEPMIG_IMAGE_TIMEOUT:-120}

failures=()
notes=()

# boot NAME MACHINE CMDLINE: runs QEMU with a hard timeout; sets RC and
# FIRST_MS (ms from QEMU's start to its first complete serial line, taken
# from $EPOCHREALTIME stamps on each line as it arrives).
boot() {
    local name=$1 machine=$2 cmdline=$3 serial="$OUT/$1.serial.log" t0 first
    rm -f "$serial" "$OUT/$name.debugcon.log"
    t0=$EPOCHREALTIME
    set +e
    timeout --kill-after=5 "$TIMEOUT" qemu-system-x86_64 \
        -M "$machine" -cpu qemu64 -m 128 -smp 1 -display none -nodefaults -no-reboot \
        -kernel "$IMG" -append "$cmdline" \
        -serial stdio -debugcon "file:$OUT/$name.debugcon.log" \
        -device isa-debug-exit,iobase=0xf4,iosize=4 </dev/null \
        | while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done \
        > "$serial.stamped"
    RC=${PIPESTATUS[0]}
    set -e
    cut -d' ' -f2- "$serial.stamped" > "$serial"
    first=$(head -n 1 "$serial.stamped" | cut -d' ' -f1)
    if [ -n "$first" ]; then
        FIRST_MS=$(awk -v a="$t0" -v b="$first" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
    else
        FIRST_MS=none
    fi
}

# expect NAME MACHINE CMDLINE CODE LAST_LINE_REGEX [EXTRA_REGEX]
expect() {
    local name=$1 machine=$2 cmdline=$3 code=$4 want=$5 extra=${6:-} last
    boot "$name" "$machine" "$cmdline"
    last=$(tail -n 1 "$OUT/$name.serial.log" 2>/dev/null || true)
    if [ "$RC" = 124 ] || [ "$RC" = 137 ]; then
        failures+=("$name: timed out after ${TIMEOUT}s")
    elif [ "$RC" != "$code" ]; then
        failures+=("$name: exit code $RC, want $code (last line: $last)")
    elif ! [[ "$last" =~ $want ]]; then
        failures+=("$name: last line '$last' does not match '$want'")
    elif [ -n "$extra" ] && ! grep -Eq "$extra" "$OUT/$name.serial.log"; then
        failures+=("$name: no line matching '$extra'")
    else
        notes+=("$name ok (first line ${FIRST_MS} ms)")
        log "image: $name: ok, exit $RC, first log line after ${FIRST_MS} ms: $last"
        return 0
    fi
    log "image: $name: FAILED; serial log:"
    sed 's/^/    /' "$OUT/$name.serial.log" >&2 || true
}

expect selftest-microvm microvm selftest 33 '^depmig-selftest: PASS$' \
    '^depmig: skipped \(need Xen\): '
expect selftest-q35 q35 selftest 33 '^depmig-selftest: PASS$'
expect crashtest microvm crashtest 37 '^depmig-selftest: FAIL crash: CPU exception 14 ' \
    '^depmig: EPITAPH: CPU exception 14 '
expect panictest microvm panictest 37 '^depmig-selftest: FAIL crash: panic at ' \
    '^depmig: EPITAPH: panic at .*deliberate panic'
expect stacktest microvm stacktest 37 \
    '^depmig-selftest: FAIL crash: CPU exception 14 .*\(boot stack overflow\)$' \
    '^depmig: EPITAPH: CPU exception 14 '
expect dftest microvm dftest 37 \
    '^depmig-selftest: FAIL crash: CPU exception 8 .*\(double fault; descriptor tables CHANGED\)$' \
    '^depmig: EPITAPH: CPU exception 8 '
expect badmode microvm 'nonsense' 35 '^depmig-selftest: FAIL unknown mode$'

size=$(stat -c %s "$IMG" 2>/dev/null || echo "?")
stripped=$(strip -o "$OUT/depmig-appliance.stripped" "$IMG" 2>/dev/null && stat -c %s "$OUT/depmig-appliance.stripped" || echo "?")
if [ ${#failures[@]} -eq 0 ]; then
    echo "image: PASS (${#notes[@]} boots: ${notes[*]}; image ${size} bytes, ${stripped} stripped)"
else
    echo "image: FAIL (${failures[*]})"
    exit 1
fi
