#!/bin/sh
# migrate-paper: depmig's source appliance reads a guest that runs the
# guest-lsm taint tracker (the walker over the agent's published taint table
# and kernel profile) while it live-migrates it in paper-analysis mode: every
# dirty page is sent, and each round's report counts dirty and
# dirty-and-tainted pages, the paper's own measurement. The guest runs the
# ticker and mmuncher (4 MiB, on the console: tainted) and a second, quiet
# mmuncher (4 MiB, /dev/null only: untainted). Verdicts, each can fail:
#  1. the agent tracks and publishes in the guest's xenstore home;
#  2. the migration commits and the guest runs on the destination as in
#     migrate-smoke (mmuncher verifies, ticker advances, nothing left);
#  3. the report has per_round_dirty_tainted for every round, never above
#     per_round_dirty, and some round after the first counts fewer
#     dirty-and-tainted than dirty pages (the quiet writer's pages; a walk
#     that fell back would count every page tainted).
. /rig/lib.sh
. /scenario/rig-guest.sh
. /scenario/baseline.sh
. /scenario/migrate.sh
G=guest
R=/tmp/depmig-paper.json

guest_start $G ticker,mmuncher 256 depmig.mib=4 || { cat /tmp/$G.create.log; rig_fail "xl create failed: $(tail -n 1 /tmp/$G.create.log)"; }
src=$(rig_domid $G)
[ -n "$src" ] || rig_fail "no domid for $G"
home=/local/domain/$src/data/depmig
depmig_wait_agent $G $home
quiet=$(guest_grep $G 'paper: quiet mmuncher pid ' | head -n 1 | sed 's/.*pid \([0-9]*\).*/\1/')
rig_say "agent tracking after ${AGENT_WAITED} s more: table-gfn=$(xenstore-read $home/table-gfn) profile-gfn=$(xenstore-read $home/profile-gfn); quiet mmuncher pid ${quiet:-?}"
guest_wait_passes $G 2 400 || { guest_dump $G; rig_fail "mmuncher did not verify 2 passes before the migration"; }
ticks=$(guest_ticks $G)
rig_say "depmig: migrating $G (domid $src, mmuncher at pass $(guest_passes $G), ticker at $ticks) in paper-analysis mode at $DEPMIG_LINK_RATE"
depmig_migrate $G $R /tmp/depmig-paper.svg --mode paper-analysis --timeout 3000 --scenario migrate-paper --workload mmuncher-4MiB+quiet-mmuncher-4MiB
rc=$?
[ -f $R ] && rig_export $R depmig-paper.json
alog=$(rig_console_log $G--depmig-src)
grep -a 'guest survey\|oracle' "$alog" 2>/dev/null | tail -n 12 | while IFS= read -r l; do rig_say "source| $l"; done
[ "$rc" = 0 ] || { guest_dump $G; xl list; rig_fail "depmig migrate failed (status $rc): $(tail -n 1 /tmp/$G.depmig.log)"; }
[ -f $R ] || rig_fail "depmig wrote no report"
rig_json report "$(tr -d '\n' < $R)"
depmig_check_moved $G "$src" "$ticks"
dirty=$(json_list $R per_round_dirty)
tainted=$(json_list $R per_round_dirty_tainted)
[ -n "$dirty" ] && [ -n "$tainted" ] || rig_fail "the report lacks per_round_dirty or per_round_dirty_tainted"
rig_say "per round: dirty=[$dirty] dirty_tainted=[$tainted]"
verdict=$(awk -v d="$dirty" -v t="$tainted" 'BEGIN {
    n = split(d, D, ","); m = split(t, T, ",")
    if (n != m || n < 2) { print "bad lengths " n " " m; exit }
    for (i = 1; i <= n; i++) if (T[i] + 0 > D[i] + 0) { print "round " i " tainted " T[i] " > dirty " D[i]; exit }
    for (i = 2; i <= n; i++) if (T[i] + 0 < D[i] + 0) fewer++
    print (fewer > 0) ? "ok " fewer : "every round after the first counts every dirty page tainted"
}')
case $verdict in ok*) ;; *) rig_fail "paper-analysis figures: $verdict (dirty=[$dirty] dirty_tainted=[$tainted])" ;; esac
rig_result PASS "depmig paper-analysis: $(depmig_summary $R) dirty=[$dirty] dirty_tainted=[$tainted] cli=${MIGRATE_SECONDS}s"
