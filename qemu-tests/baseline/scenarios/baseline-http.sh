#!/bin/sh
# baseline-http: stock `xl migrate` of the guest downloading a long HTTP stream
# from dom0 (and serving HTTP that dom0 probes for latency) through the
# rate-limited pipe. Passes when the migration completes with its per-round
# figures and the download goes on after it, on the destination.
. /rig/lib.sh
. /scenario/rig-guest.sh
. /scenario/baseline.sh
G=guest
R=/tmp/baseline-http.json
/scenario/bin/wlhttp serve-stream --port 8080 >/tmp/stream-server.log 2>&1 &
guest_start $G ticker,httpdl,httpd || { cat /tmp/$G.create.log; rig_fail "xl create failed: $(tail -n 1 /tmp/$G.create.log)"; }
rig_wait_console $G 'httpdl: bytes=[1-9]' 300 || { guest_dump $G; rig_fail "the download never started"; }

echo before > /tmp/phase
/scenario/bin/wlhttp probe --url "http://$GUEST_IP/" --phase-file /tmp/phase --out /tmp/probe.json \
    --interval-ms 250 --timeout-ms 3000 --max-secs 3000 > /tmp/probe.log 2>&1 &
sleep 15
echo during > /tmp/phase
src=$(rig_domid $G)
rig_say "migrating $G (domid $src, $(guest_dl_bytes $G) bytes downloaded) at $DEPMIG_LINK_RATE = $DEPMIG_LINK_BYTES_PER_SEC B/s"
baseline_migrate $G baseline-http httpdl $R
rc=$?
echo after > /tmp/phase
cat /tmp/$G.migrate.log /tmp/$G.watch.log
[ "$rc" = 0 ] || { guest_dump $G; rig_fail "xl migrate failed (status $rc): $(tail -n 1 /tmp/$G.migrate.log)"; }
[ -f $R ] || rig_fail "migpipe wrote no report"
cat $R
rig_export $R baseline-http.json
rig_json report "$(cat $R)"
rig_say "xl migrate took $MIGRATE_SECONDS s; $(baseline_summary $R)"
baseline_check_strict $R
dst=$(rig_domid $G)
[ -n "$dst" ] && [ "$dst" != "$src" ] || rig_fail "no destination domain named $G"
rig_wait_gone "$G--migratedaway" 60 || rig_fail "the source domain still exists"
grep -q '"parse_error": null' $R || rig_fail "the stream was not understood: $(grep parse_error $R)"

# The download goes on from the destination.
b0=$(guest_dl_bytes $G)
sleep 20
b1=$(guest_dl_bytes $G)
echo stop > /tmp/phase
wait_probe=0
while [ ! -f /tmp/probe.json ] && [ $wait_probe -lt 30 ]; do sleep 1; wait_probe=$((wait_probe + 1)); done
cat /tmp/probe.log /tmp/probe.json 2>/dev/null
[ -f /tmp/probe.json ] && { rig_export /tmp/probe.json probe.json; rig_json probe "$(cat /tmp/probe.json)"; }
guest_dump $G
guest_grep $G 'httpdl: ERROR' && rig_say "the download reconnected during the migration"
guest_grep $G 'CORRUPT' && rig_fail "the download saw corrupt data"
[ "$b1" -gt "$b0" ] || rig_fail "the download made no progress after the migration ($b0 -> $b1 bytes)"
reconnects=$(guest_grep $G 'httpdl: ERROR' | wc -l)
rig_result PASS "$(baseline_summary $R) migrate=${MIGRATE_SECONDS}s, download $b0 -> $b1 bytes after, reconnects=$reconnects"
