#!/usr/bin/env bash
# The rig's scenario runner: builds (or takes from the cache) Xen, the FLASK
# policy and dom0, then boots Xen + dom0 under QEMU once per scenario with the
# scenario appended to dom0's initramfs, and prints one verdict line per
# scenario:  scenario <name>: PASS|FAIL <reason>
# Serial logs, records and files land in out/rig/<scenario>/.
#
#   qemu-tests/run.sh [--rate RATE] [--timeout S] [--list] [SCENARIO...]
#
# Without scenario names it runs those listed in scenarios/default.list and
# <part>/scenarios/default.list.
# See qemu-tests/README.md for how scenarios are written.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$root/scripts/lib.sh"
. "$here/lib.sh"

usage() { sed -n '2,12s/^# \{0,1\}//p' "$0"; exit 2; }

rate_opt= timeout_opt= list=0 names=()
while [ $# -gt 0 ]; do
    case $1 in
        --rate) rate_opt=${2:?}; shift 2 ;;
        --timeout) timeout_opt=${2:?}; shift 2 ;;
        --list) list=1; shift ;;
        -h|--help) usage ;;
        -*) die "unknown option $1" ;;
        *) names+=("$1"); shift ;;
    esac
done

# scenario_path NAME: the scenario script, from scenarios/ or any <part>/scenarios/.
scenario_path() {
    local f
    for f in "$here/scenarios/$1.sh" "$here"/*/scenarios/"$1.sh"; do
        [ -f "$f" ] && { printf '%s\n' "$f"; return 0; }
    done
    return 1
}

if [ "$list" = 1 ]; then
    for f in "$here"/scenarios/*.sh "$here"/*/scenarios/*.sh; do
        [ -f "$f" ] && basename "$f" .sh
    done | sort -u
    exit 0
fi
if [ ${#names[@]} -eq 0 ]; then
    # scenarios/default.list first, then each part's <part>/scenarios/default.list.
    mapfile -t names < <(cat "$here/scenarios/default.list" "$here"/*/scenarios/default.list 2>/dev/null \
                         | grep -v '^[[:space:]]*\(#\|$\)' | awk '!seen[$1]++ { print $1 }')
fi
for n in "${names[@]}"; do
    case $n in *[!A-Za-z0-9_-]*) die "bad scenario name '$n'" ;; esac
    scenario_path "$n" >/dev/null || die "no scenario '$n' (try --list)"
done

need_pkgs qemu-system-x86 cpio gzip

# rate_bytes RATE: bytes per second of an xl vif rate (e.g. 16Mb/s, 2MB/s).
rate_bytes() {
    local n unit
    [[ $1 =~ ^([0-9]+)([GMK]?)([bB])/s$ ]] || return 1
    n=${BASH_REMATCH[1]}
    case ${BASH_REMATCH[2]} in G) n=$((n * 1000000000)) ;; M) n=$((n * 1000000)) ;; K) n=$((n * 1000)) ;; esac
    [ "${BASH_REMATCH[3]}" = b ] && n=$((n / 8))
    echo "$n"
}

log "building the rig"
t_build=$(date +%s)
xen=$("$here/xen/build.sh")
policy=$("$here/flask/build.sh")
{ read -r vmlinuz; read -r dom0_initrd; } < <("$here/dom0/build.sh")
[ -f "$xen" ] && [ -f "$policy" ] && [ -f "$vmlinuz" ] && [ -f "$dom0_initrd" ] || die "rig build incomplete"
log "rig ready in $(( $(date +%s) - t_build )) s"

qemu_pid= qemu_b_pid=
# stop_machine PID: asks QEMU to go, then makes sure it is gone.
stop_machine() {
    [ -n "$1" ] || return 0
    if kill -0 "$1" 2>/dev/null; then
        kill "$1" 2>/dev/null; sleep 1; kill -9 "$1" 2>/dev/null || true
    fi
    return 0
}
cleanup() {
    stop_machine "$qemu_pid"
    stop_machine "$qemu_b_pid"
    if [ -n "${stage:-}" ]; then rm -rf "$stage"; fi
    # An EXIT trap's status becomes the script's: never fail here.
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failures=0
# verdict NAME PASS|FAIL REASON: the one line per scenario, also kept in its out dir.
verdict() {
    local line="scenario $1: $2${3:+ $3}"
    printf '%s\n' "$line"
    printf '%s\n' "$line" > "$out/verdict"
    [ "$2" = PASS ] || failures=$((failures + 1))
}

for name in "${names[@]}"; do
    script=$(scenario_path "$name")
    sdir=$(dirname "$script")
    out="$root/out/rig/$name"
    # One run per scenario at a time: a second one would clobber the out dir.
    mkdir -p "$root/out/rig"
    [ -n "${lockfd:-}" ] && exec {lockfd}>&-
    exec {lockfd}>"$root/out/rig/.$name.lock"
    if ! flock -n "$lockfd"; then
        printf 'scenario %s: FAIL another run of this scenario holds %s\n' "$name" "out/rig/.$name.lock"
        failures=$((failures + 1)); continue
    fi
    rm -rf "$out"; mkdir -p "$out/files"

    # Per-scenario settings (host side): TIMEOUT, QEMU_MEM, DOM0_MEM, LINK_RATE,
    # HOSTS=2 for a second machine (host b, its part in NAME.hostb), and
    # EXPORT_MIB for an export disk on host a (rig_export_disk: files too
    # large for the serial console).
    TIMEOUT=900 QEMU_MEM=4096 DOM0_MEM=1024 LINK_RATE=20Mb/s HOSTS=1 EXPORT_MIB=0
    [ -f "$sdir/$name.conf" ] && . "$sdir/$name.conf"
    [ -n "$timeout_opt" ] && TIMEOUT=$timeout_opt
    rate=${rate_opt:-${DEPMIG_LINK_RATE:-$LINK_RATE}}
    rate_bps=$(rate_bytes "$rate") || { verdict "$name" FAIL "bad link rate '$rate'"; continue; }

    stage=$(mktemp -d "${TMPDIR:-/tmp}/depmig-scenario.XXXXXX")
    mkdir -p "$stage/scenario"
    cp "$script" "$stage/scenario/run.sh"; chmod +x "$stage/scenario/run.sh"
    if [ "$HOSTS" = 2 ] && [ -f "$sdir/$name.hostb" ]; then cp "$sdir/$name.hostb" "$stage/scenario/host-b.sh"; fi
    {
        printf 'DEPMIG_SCENARIO=%q\n' "$name"
        printf 'DEPMIG_LINK_RATE=%q\n' "$rate"
        printf 'DEPMIG_LINK_BYTES_PER_SEC=%q\n' "$rate_bps"
        # Extra options for every `depmig migrate` of the scenario (an
        # experiment's setting, e.g. --bitmap-route direct).
        printf 'DEPMIG_MIGRATE_ARGS=%q\n' "${DEPMIG_MIGRATE_ARGS:-}"
    } > "$stage/scenario/env"
    if [ -x "$sdir/$name.prep" ]; then
        if ! DEPMIG_ROOT=$root DEPMIG_SCENARIO=$name DEPMIG_LINK_RATE=$rate DEPMIG_OUT=$out \
                DEPMIG_LINK_BYTES_PER_SEC=$rate_bps DEPMIG_DOM0_KERNEL=$vmlinuz DEPMIG_DOM0_INITRD=$dom0_initrd \
                timeout 3000 "$sdir/$name.prep" "$stage/scenario" \
                >"$out/prep.log" 2>&1; then
            verdict "$name" FAIL "prep hook failed: $(tail -n 1 "$out/prep.log")"
            rm -rf "$stage"; stage=; continue
        fi
    fi
    # dom0's initramfs, zero-padded to 4 bytes, then the scenario as a plain
    # cpio: Linux unpacks concatenated archives, skipping the padding.
    cp "$dom0_initrd" "$stage/initrd"
    pad=$(( (4 - $(stat -c %s "$stage/initrd") % 4) % 4 ))
    head -c "$pad" /dev/zero >> "$stage/initrd"
    (cd "$stage" && find scenario | LC_ALL=C sort | cpio -o -H newc --quiet) >> "$stage/initrd"

    serial="$out/serial.log"
    # Host a's NIC: none for one host (not even QEMU's default one), or the
    # link to host b, a stream socket that stays on this machine; both
    # machines boot the same Xen, dom0 and scenario, b with rig.host=b.
    link="$stage/link.sock"
    nic_a=(-nic none)
    [ "$HOSTS" = 2 ] && nic_a=(-netdev "stream,id=link,server=on,addr.type=unix,addr.path=$link"
                               -device virtio-net-pci,netdev=link,mac=52:54:00:77:00:0a)
    # The export disk: a sparse raw file dom0 sees as /dev/vda, written only
    # by rig_export_disk and read back below.
    export_img="$out/export.img" disk_a=()
    rm -f "$export_img"
    if [ "$EXPORT_MIB" -gt 0 ]; then
        truncate -s "${EXPORT_MIB}M" "$export_img"
        disk_a=(-drive "file=$export_img,format=raw,if=none,id=export,cache=unsafe"
                -device virtio-blk-pci,drive=export)
    fi
    xen_cmdline="console=com1 com1=115200,8n1 console_timestamps=boot dom0_mem=${DOM0_MEM}M,max:${DOM0_MEM}M flask=enforcing loglvl=all guest_loglvl=all"
    # A boot in which dom0 never reaches its scenario runner is the emulator's
    # or the nested Xen's trouble, not the scenario's: its serial log is kept
    # as serial.noboot-N.log and the rig boots once more. A scenario that
    # started is never retried.
    for boot in 1 2; do
        log "scenario $name: booting (timeout ${TIMEOUT} s, link $rate)"
        t0=$(date +%s.%N)
        rm -f "$link"
        qemu-system-x86_64 -M q35 -cpu qemu64,+svm,+npt -smp 2 -m "$QEMU_MEM" \
            -accel tcg,thread=multi -nographic -no-reboot -monitor none "${nic_a[@]}" "${disk_a[@]}" \
            -kernel "$xen" -append "$xen_cmdline" \
            -initrd "$vmlinuz console=hvc0 loglevel=4,$stage/initrd,$policy" \
            </dev/null >"$serial" 2>&1 &
        qemu_pid=$!
        if [ "$HOSTS" = 2 ]; then
            for _ in $(seq 50); do [ -S "$link" ] && break; sleep 0.1; done
            qemu-system-x86_64 -M q35 -cpu qemu64,+svm,+npt -smp 2 -m "$QEMU_MEM" \
                -accel tcg,thread=multi -nographic -no-reboot -monitor none \
                -netdev "stream,id=link,server=off,addr.type=unix,addr.path=$link" \
                -device virtio-net-pci,netdev=link,mac=52:54:00:77:00:0b \
                -kernel "$xen" -append "$xen_cmdline" \
                -initrd "$vmlinuz console=hvc0 loglevel=4 rig.host=b,$stage/initrd,$policy" \
                </dev/null >"$out/serial-b.log" 2>&1 &
            qemu_b_pid=$!
        fi

        status=timeout t_ready= t_end=
        while :; do
            now=$(date +%s.%N)
            if [ -z "$t_ready" ] && grep -q '^DEPMIG-LOG dom0 ready' "$serial"; then t_ready=$now; fi
            if grep -q '^DEPMIG-END' "$serial"; then status=end; t_end=$now; break; fi
            if ! kill -0 "$qemu_pid" 2>/dev/null; then status=exited; break; fi
            if awk -v a="$t0" -v b="$now" -v t="$TIMEOUT" 'BEGIN { exit !(b - a > t) }'; then break; fi
            # dom0 normally needs well under 120 s; give a stuck boot at most half the budget.
            if [ -z "$t_ready" ] && [ "$boot" = 1 ] \
                && awk -v a="$t0" -v b="$now" -v t="$TIMEOUT" 'BEGIN { exit !(b - a > t / 2 && b - a > 240) }'; then
                status=noboot; break
            fi
            sleep 1
        done
        # Give dom0 a moment to power off, then make sure QEMU is gone.
        for _ in 1 2 3 4 5; do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 1; done
        stop_machine "$qemu_pid"; qemu_pid=
        # Host b never ends on its own: its part is done when a's is.
        stop_machine "$qemu_b_pid"; qemu_b_pid=
        wait 2>/dev/null || true
        [ "$status" = noboot ] || break
        cp "$serial" "$out/serial.noboot-$boot.log"
        log "scenario $name: dom0 not ready after $(printf '%.0f' "$(awk -v a="$t0" -v b="$now" 'BEGIN { print b - a }')") s; last serial lines:"
        tail -n 5 "$serial" | tr -d '\r' | cut -c1-160 | sed 's/^/    | /'
        status=timeout
    done
    t1=$(date +%s.%N)

    # Extract the tagged lines (hvc lines end in \r\n). Xen writes its own
    # console to the same serial port whenever it likes, also in the middle
    # of a line of dom0's ("...IG5zIGFm(XEN) [ 16.5] uart interrupt ...",
    # the rest of dom0's line on the next): a tagged line is mended from
    # its two parts, and Xen's line kept apart.
    tr -d '\r' < "$serial" | awk '
        mend != "" {
            if ($0 !~ /^(DEPMIG-|\(XEN\)|\(d[0-9]+\))/) { print mend $0; mend = ""; next }
            print mend; mend = ""
        }
        /^DEPMIG-/ && index($0, "(XEN)") > 1 {
            mend = substr($0, 1, index($0, "(XEN)") - 1)
            print substr($0, index($0, "(XEN)"))
            next
        }
        { print }
        END { if (mend != "") print mend }' > "$out/serial.clean"
    grep '^DEPMIG-RESULT ' "$out/serial.clean" | cut -d' ' -f2- > "$out/result" || true
    awk -v d="$out" '$1 == "DEPMIG-JSON" && $2 ~ /^[A-Za-z0-9_.-]+$/ {
            n = $2; sub(/^DEPMIG-JSON [^ ]+ /, ""); print > (d "/" n ".jsonl") }' "$out/serial.clean"
    exports_ok=1
    for fname in $(awk '$1 == "DEPMIG-FILE-END" { print $2 }' "$out/serial.clean"); do
        awk -v n="$fname" '$1 == "DEPMIG-FILE" && $2 == n { print $3 }' "$out/serial.clean" \
            | base64 -d > "$out/files/$fname" 2>/dev/null || exports_ok=0
        want=$(awk -v n="$fname" '$1 == "DEPMIG-FILE-END" && $2 == n { print $3 }' "$out/serial.clean" | tail -n 1)
        [ "$(sha256sum < "$out/files/$fname" | cut -d' ' -f1)" = "$want" ] || exports_ok=0
    done
    # Files written to the export disk: DEPMIG-BLOB NAME OFFSET_MIB SIZE SHA256.
    while read -r _ bname boff bsize bsum; do
        case $bname in *[!A-Za-z0-9_.-]*|'') exports_ok=0; continue ;; esac
        case $boff$bsize in *[!0-9]*|'') exports_ok=0; continue ;; esac
        # dd stops on head's early close; only the digest below decides.
        if [ -f "$export_img" ]; then
            { dd if="$export_img" bs=1M skip="$boff" status=none || true; } | head -c "$bsize" > "$out/files/$bname"
        fi
        [ -f "$out/files/$bname" ] && [ "$(sha256sum < "$out/files/$bname" | cut -d' ' -f1)" = "$bsum" ] \
            || exports_ok=0
    done < <(awk '$1 == "DEPMIG-BLOB" && NF == 5' "$out/serial.clean")
    rm -f "$export_img"
    rm -f "$out/serial.clean"
    awk -v a="$t0" -v r="${t_ready:-}" -v e="${t_end:-}" -v z="$t1" -v s="$status" -v rate="$rate" 'BEGIN {
        printf "{\"status\":\"%s\",\"link_rate\":\"%s\",\"dom0_ready_s\":%s,\"scenario_end_s\":%s,\"total_s\":%.1f}\n",
            s, rate, r == "" ? "null" : sprintf("%.1f", r - a), e == "" ? "null" : sprintf("%.1f", e - a), z - a }' \
        > "$out/timing.json"
    rm -rf "$stage"; stage=

    nres=$(wc -l < "$out/result")
    if [ "$status" = timeout ]; then
        verdict "$name" FAIL "timeout after ${TIMEOUT} s (last: $(grep -a 'DEPMIG-LOG' "$serial" | tail -n 1 | tr -d '\r' | cut -c12-100))"
        [ -n "$t_ready" ] || { echo "    dom0 never became ready; last serial lines:"; tail -n 8 "$serial" | tr -d '\r' | cut -c1-160 | sed 's/^/    | /'; }
    elif [ "$status" != end ]; then
        verdict "$name" FAIL "machine stopped before the scenario ended (crash? see $out/serial.log)"
    elif [ "$nres" -ne 1 ]; then
        verdict "$name" FAIL "expected one DEPMIG-RESULT line, got $nres"
    elif [ "$exports_ok" != 1 ]; then
        verdict "$name" FAIL "an exported file arrived damaged"
    elif ! grep -q '^PASS' "$out/result"; then
        verdict "$name" FAIL "$(sed 's/^[A-Z]* \{0,1\}//' "$out/result")"
    elif [ -x "$sdir/$name.check" ] && ! "$sdir/$name.check" "$out" >"$out/check.log" 2>&1; then
        verdict "$name" FAIL "check hook: $(tail -n 1 "$out/check.log")"
    else
        verdict "$name" PASS "$(sed 's/^[A-Z]* \{0,1\}//' "$out/result") ($(printf '%.0f' "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')") s)"
    fi
done

printf 'rig: %d passed, %d failed\n' $(( ${#names[@]} - failures )) "$failures"
exit $(( failures > 0 ))
