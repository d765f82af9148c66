#!/usr/bin/env bash
# Boots the rig's guest kernel and initramfs under plain QEMU (software
# emulation, no Xen) and checks that the workloads run: the ticker ticks,
# mmuncher completes verified passes, the HTTP download from a host-side
# stream server makes progress and the guest's HTTP server answers a host-side
# probe. Prints one verdict line; the serial log is kept in out/guest-qemu/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/scripts/lib.sh"

timeout_s=${GUEST_QEMU_TIMEOUT:-300}
need_pkgs qemu-system-x86 python3
{ read -r kernel; read -r initrd; } < <("$here/build.sh")
wl="$DEPMIG_CACHE/workloads-target/static"
out="$root/out/guest-qemu"
rm -rf "$out"; mkdir -p "$out"

# Free loopback ports for the host-side stream server and the forwarded guest server.
pick_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sport=$(pick_port) fport=$(pick_port)

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$wl/wlhttp" serve-stream --port "$sport" >"$out/stream-server.log" 2>&1 &
pids+=($!)

# QEMU's user network: the guest's 10.77.0.1 is the host's loopback, as dom0 is on xenbr0 in the rig.
qemu-system-x86_64 -M q35 -cpu qemu64 -accel tcg -m 512 -smp 1 -nographic -no-reboot -monitor none \
    -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyS0 loglevel=4 panic=-1 lsm=lockdown,yama,integrity,apparmor,bpf depmig.workload=ticker,mmuncher,httpdl,httpd depmig.mib=64 depmig.stream_port=$sport" \
    -netdev "user,id=n0,net=10.77.0.0/24,host=10.77.0.1,hostfwd=tcp:127.0.0.1:$fport-10.77.0.10:80" \
    -device e1000,netdev=n0 </dev/null >"$out/serial.log" 2>&1 &
qpid=$!
pids+=($qpid)

t0=$(date +%s)
have() { grep -aEq "$1" "$out/serial.log"; }
verdict() { echo "guest-qemu: $1 $2 ($(( $(date +%s) - t0 )) s)"; [ "$1" = PASS ]; exit $?; }
while :; do
    kill -0 "$qpid" 2>/dev/null || verdict FAIL "QEMU exited early (see $out/serial.log)"
    [ $(( $(date +%s) - t0 )) -lt "$timeout_s" ] || verdict FAIL "timeout: $(grep -a '^guest:\|^mmuncher\|^httpdl' "$out/serial.log" | tail -n 1)"
    if have 'mmuncher: verify ok passes=([3-9]|[1-9][0-9])' && have '^ticker: n=5 ' && have 'httpdl: bytes=[1-9]'; then
        break
    fi
    sleep 2
done
have 'CORRUPT' && verdict FAIL "corruption reported: $(grep -a CORRUPT "$out/serial.log" | head -n 1)"
have 'exited status' && verdict FAIL "a workload stopped: $(grep -a 'exited status' "$out/serial.log" | head -n 1)"
have 'guest: init: .*lsm [^ ]*bpf' || verdict FAIL "bpf is not among the guest's active LSMs"

echo during > "$out/phase"
( sleep 5; echo stop > "$out/phase" ) &
"$wl/wlhttp" probe --url "http://127.0.0.1:$fport/" --phase-file "$out/phase" --out "$out/probe.json" \
    --interval-ms 200 --timeout-ms 5000 --max-secs 30 >"$out/probe.log" 2>&1 || verdict FAIL "probe failed: $(tail -n 1 "$out/probe.log")"
ok=$(awk '/^probe: phase=during/ { sub("ok=", "", $3); print $3 }' "$out/probe.log")
[ "${ok:-0}" -gt 0 ] || verdict FAIL "the guest's HTTP server never answered: $(cat "$out/probe.log")"
passes=$(grep -aoE 'verify ok passes=[0-9]+' "$out/serial.log" | tail -n 1)
rate=$(grep -aoE 'pages_per_s=[0-9]+' "$out/serial.log" | tail -n 1)
dl=$(grep -aoE 'kib_s=[0-9]+' "$out/serial.log" | tail -n 1)
verdict PASS "mmuncher $passes $rate, httpdl $dl, httpd answered $ok probes, lsm has bpf"
