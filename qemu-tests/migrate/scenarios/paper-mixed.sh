#!/bin/sh
# paper-mixed: the paper's mixed guest. The 256 MiB guest runs the quiet
# mmuncher of paper-mmuncher (32 MiB, talks to nobody: untainted) and the
# rig's HTTP server (tainted), which dom0 queries every 20 ms before, during
# and after one dependency-aware depmig migration. Figures: the server's
# latency per phase, the writer's passes over time (frozen while the
# migration runs), the migration's pages per round. Verdicts, each can fail:
# the migration commits and the guest runs on the destination (one copy,
# source and helpers gone, the writer verifies two more passes after its
# thaw, the ticker goes on); the source froze at least one group and the
# migrated guest's agent thawed it; the server answered during the migration;
# the writer did not run while frozen (no round after the first dirtied a
# pass's worth of pages, and its pass count stood still).
. /rig/lib.sh
. /scenario/rig-guest.sh
. /scenario/baseline.sh
. /scenario/migrate.sh
G=guest
R=/tmp/depmig-mixed.json
GUEST_MUNCHER=quiet
export GUEST_MUNCHER

guest_start $G ticker,httpd 256 || { cat /tmp/$G.create.log; rig_fail "xl create failed: $(tail -n 1 /tmp/$G.create.log)"; }
src=$(rig_domid $G)
[ -n "$src" ] || rig_fail "no domid for $G"
depmig_wait_agent $G /local/domain/$src/data/depmig
rig_say "agent tracking after ${AGENT_WAITED} s more"
guest_wait_passes $G 2 400 || { guest_dump $G; rig_fail "the quiet mmuncher did not verify 2 passes before the migration"; }

echo before > /tmp/phase
/scenario/bin/wlhttp probe --url "http://$GUEST_IP/" --phase-file /tmp/phase --out /tmp/probe.json \
    --interval-ms 20 --timeout-ms 3000 --max-secs 3000 > /tmp/probe.log 2>&1 &
# Every 2 s: dom0's clock, the writer's pass count, the source guest's agent
# status ("<seq> frozen G P" from the freeze until the source is gone).
( while :; do
    echo "$(cut -d' ' -f1 /proc/uptime) $(guest_passes $G) $(xenstore-read /local/domain/$src/data/depmig/status 2>/dev/null | tr ' ' _)"
    sleep 2
done ) > /tmp/passes.log 2>/dev/null &
sampler=$!
sleep 20

ticks=$(guest_ticks $G)
echo during > /tmp/phase
rig_say "depmig dependency-aware: migrating $G (domid $src, writer at pass $(guest_passes $G), ticker $ticks)"
depmig_migrate $G $R /tmp/depmig-mixed.svg --mode dependency-aware --timeout 3000 \
    --scenario paper-mixed --workload quiet-mmuncher-32MiB+httpd
rc=$?
echo after > /tmp/phase
[ -f $R ] && rig_export $R depmig-mixed.json
grep -a 'guest survey\|oracle\|guest agent' "$(rig_console_log $G--depmig-src)" 2>/dev/null | tail -n 8 |
    while IFS= read -r l; do rig_say "source| $l"; done
[ "$rc" = 0 ] || { guest_dump $G; xl list; rig_fail "depmig ended with status $rc: $(tail -n 1 /tmp/$G.depmig.log)"; }
[ -f $R ] || rig_fail "depmig wrote no report"
rig_json report "$(tr -d '\n' < $R)"
rig_say "depmig dependency-aware: $(depmig_summary $R) cli=${MIGRATE_SECONDS}s"
depmig_check_moved $G "$src" "$ticks"
sleep 20
echo stop > /tmp/phase
kill $sampler 2>/dev/null
i=0
while [ ! -f /tmp/probe.json ] && [ $i -lt 30 ]; do sleep 1; i=$((i + 1)); done
[ -f /tmp/probe.json ] || { cat /tmp/probe.log; rig_fail "the probe wrote no figures"; }
rig_export /tmp/probe.json paper-mixed-probe.json
rig_json probe "$(tr -d '\n' < /tmp/probe.json)"
grep '^probe: phase=' /tmp/probe.log | while IFS= read -r l; do rig_say "$l"; done
rig_export /tmp/passes.log paper-mixed-passes.log

frozen=$(grep -o '"frozen_groups": *[0-9]*' $R | head -n 1 | sed 's/.*: *//')
[ "${frozen:-0}" -ge 1 ] || rig_fail "the source froze no group (frozen_groups=${frozen:-missing})"
status=$(xenstore-read /local/domain/$(rig_domid $G)/data/depmig/status 2>/dev/null)
thawed=$(echo "$status" | sed -n 's/^[0-9]* thawed \([0-9]*\)$/\1/p')
[ -n "$thawed" ] && [ "$thawed" -ge 1 ] || rig_fail "the migrated guest's agent status is '$status', want '<seq> thawed N' with N >= 1"
during_ok=$(grep '^probe: phase=during ' /tmp/probe.log | sed 's/.* ok=\([0-9]*\).*/\1/')
[ "${during_ok:-0}" -ge 1 ] || rig_fail "the server never answered during the migration"
# The writer while it was frozen. (1) The migration's own figures: every round
# after the first dirtied fewer pages than one pass of the writer rewrites
# (8,192), which it could not have done had it run through a round. (2) Its pass
# count, read from the guest's console, stood still: from 30 s after the
# source's agent first said frozen (the count travels through a 5 s print loop
# and a console log written late while dom0 is busy: 17 s of lag seen) to the
# last sample before the source was gone.
later=$(json_list $R per_round_dirty | cut -d, -f2-)
for d in $(echo "$later" | tr ',' ' '); do
    [ "$d" -lt 8192 ] || rig_fail "a round after the first dirtied $d pages, a writer's pass or more (dirty after round 1: $later)"
done
span=$(awk '$3 ~ /_frozen_/ { if (!t0) t0 = $1; if ($1 >= t0 + 30) { if (!n++) { a = $2; ta = $1 } b = $2; tb = $1 } }
    END { print (n ? a " " b " " n " " int(tb - ta) : "none") }' /tmp/passes.log)
rig_say "writer's passes while frozen (first, last, samples, seconds): $span; frozen groups $frozen, thawed $thawed; passes now $(guest_passes $G); dirty after round 1: $later"
set -- $span
[ "$1" != none ] || rig_fail "no sample 30 s after the source's agent said frozen: $(grep _frozen_ /tmp/passes.log | head -n 3 | tr '\n' ';')"
[ "$1" = "$2" ] || rig_fail "the writer made passes while frozen ($1 -> $2 over $3 samples)"
before=$(grep '^probe: phase=before ' /tmp/probe.log | sed 's/^probe: phase=before //')
during=$(grep '^probe: phase=during ' /tmp/probe.log | sed 's/^probe: phase=during //')
rig_result PASS "server latency before: $before; during: $during; writer frozen at pass $1 ($3 samples over $4 s), thawed $thawed; $(depmig_summary $R)"
