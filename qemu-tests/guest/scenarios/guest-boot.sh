#!/bin/sh
# guest-boot: the rig's PVH guest (Debian kernel, shadow paging, 512 MiB)
# boots under Xen with bpf among its LSMs, its ticker ticks, mmuncher verifies
# passes, and dom0 reaches the guest's HTTP server over xenbr0.
. /rig/lib.sh
. /scenario/rig-guest.sh
G=guest
t0=$(cut -d' ' -f1 /proc/uptime)
guest_start $G ticker,mmuncher,httpd || { cat /tmp/$G.create.log; rig_fail "xl create failed: $(tail -n 1 /tmp/$G.create.log)"; }
rig_say "guest created in $(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }') s"
rig_wait_console $G 'guest: ready' 240 || { guest_dump $G; rig_fail "guest init never became ready"; }
t_ready=$(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }')
guest_wait_passes $G 2 300 || { guest_dump $G; rig_fail "mmuncher did not verify 2 passes"; }
ticks=$(guest_ticks $G)
[ "$ticks" -ge 3 ] || { guest_dump $G; rig_fail "ticker at $ticks"; }
lsm=$(guest_grep $G 'guest: init:' | sed -n 's/.*lsm \([^ ]*\).*/\1/p' | head -n 1)
case ,$lsm, in *,bpf,*) ;; *) rig_fail "bpf not among the guest's LSMs ($lsm)" ;; esac

echo during > /tmp/phase
( sleep 6; echo stop > /tmp/phase ) &
/scenario/bin/wlhttp probe --url "http://$GUEST_IP/" --phase-file /tmp/phase --out /tmp/probe.json \
    --interval-ms 200 --timeout-ms 3000 --max-secs 60 > /tmp/probe.log 2>&1
cat /tmp/probe.log
ok=$(sed -n 's/^probe: phase=during ok=\([0-9]*\).*/\1/p' /tmp/probe.log)
[ "${ok:-0}" -gt 0 ] || rig_fail "dom0 could not reach the guest's HTTP server"
p50=$(sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p' /tmp/probe.log)
passes=$(guest_passes $G)
rate=$(guest_grep $G 'mmuncher: verify ok' | tail -n 1 | sed -n 's/.*pages_per_s=\([0-9]*\).*/\1/p')
guest_dump $G
rig_json guest-boot "{\"ready_s\":$t_ready,\"lsm\":\"$lsm\",\"mmuncher_passes\":$passes,\"mmuncher_pages_per_s\":${rate:-0},\"ticks\":$ticks,\"http_ok\":$ok,\"http_p50_ms\":${p50:-null}}"
xl destroy $G
rig_result PASS "guest ready in ${t_ready} s, lsm $lsm, mmuncher $passes passes at ${rate:-?} pages/s, http p50 ${p50} ms"
