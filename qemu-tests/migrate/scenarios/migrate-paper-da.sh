#!/bin/sh
# migrate-paper-da: the guest of migrate-paper (guest-lsm's agent, the
# console mmuncher and ticker, a quiet untainted mmuncher) live-migrated in
# depmig's dependency-aware mode. Verdicts, each can fail:
#  1. the agent tracks and publishes in the guest's xenstore home;
#  2. the source appliance has the agent freeze quiet untainted groups (the
#     report's frozen_groups is at least 1, and the agent's log names the
#     quiet mmuncher's pid among the frozen);
#  3. the migration commits and the guest runs on the destination as in
#     migrate-smoke (mmuncher verifies, ticker advances, nothing left), and
#     the quiet mmuncher, thawed, verifies every one of its pages through
#     two more passes (its verdict is in its process name, printed by the
#     hook as "quiet: q<passes> ok|BAD");
#  4. after the unpause the CLI has the migrated guest's agent thaw them:
#     its answer in the new domain's data/depmig/status is `<seq> thawed N`
#     with N at least 1, and the CLI ended without a warning (status 0).
# An attempt rolled back because an appliance died (the open triple fault,
# qemu-tests/README.md) must leave the guest running at the source, which is
# checked, and is tried once more; the result line says so.
. /rig/lib.sh
. /scenario/rig-guest.sh
. /scenario/baseline.sh
. /scenario/migrate.sh
G=guest
R=/tmp/depmig-paper-da.json

guest_start $G ticker,mmuncher 256 depmig.mib=4 || { cat /tmp/$G.create.log; rig_fail "xl create failed: $(tail -n 1 /tmp/$G.create.log)"; }
src=$(rig_domid $G)
[ -n "$src" ] || rig_fail "no domid for $G"
home=/local/domain/$src/data/depmig
depmig_wait_agent $G $home
rig_say "agent tracking after ${AGENT_WAITED} s more: table-gfn=$(xenstore-read $home/table-gfn)"
guest_wait_passes $G 2 400 || { guest_dump $G; rig_fail "mmuncher did not verify 2 passes before the migration"; }
qpid=$(guest_grep $G 'paper: quiet mmuncher pid [0-9]+' | sed 's/.*pid \([0-9]*\).*/\1/' | head -n 1)
[ -n "$qpid" ] || { guest_dump $G; rig_fail "the hook did not start the quiet mmuncher"; }
GUEST_MUNCHER=quiet
guest_wait_passes $G 2 400 || { guest_dump $G; rig_fail "the quiet mmuncher did not verify 2 passes before the migration"; }
GUEST_MUNCHER=
ticks=$(guest_ticks $G)
rig_say "depmig: migrating $G (domid $src, mmuncher at pass $(guest_passes $G), ticker at $ticks) in dependency-aware mode at $DEPMIG_LINK_RATE"
depmig_migrate_retrying $G $R /tmp/depmig-paper-da.svg --mode dependency-aware --timeout 3000 --scenario migrate-paper-da --workload mmuncher-4MiB+quiet-mmuncher-4MiB
rc=$?
[ -f $R ] && rig_export $R depmig-paper-da.json
alog=$(rig_console_log $G--depmig-src)
grep -a 'guest survey\|oracle\|guest agent' "$alog" 2>/dev/null | tail -n 14 | while IFS= read -r l; do rig_say "source| $l"; done
[ "$rc" = 0 ] || { guest_dump $G; xl list; rig_fail "depmig migrate ended with status $rc: $(tail -n 1 /tmp/$G.depmig.log)"; }
[ -f $R ] || rig_fail "depmig wrote no report"
rig_json report "$(tr -d '\n' < $R)"
depmig_check_moved $G "$src" "$ticks"
frozen=$(grep -o '"frozen_groups": *[0-9]*' $R | head -n 1 | sed 's/.*: *//')
[ "${frozen:-0}" -ge 1 ] || rig_fail "the source froze no group (frozen_groups=${frozen:-missing})"
guest_grep $G 'depmig-lsm: frozen group [0-9]+: pids ' | sed 's/.*: pids //' | tr ',' '\n' | grep -qx "$qpid" \
    || rig_fail "the quiet mmuncher (pid $qpid) is in no frozen group: $(guest_grep $G 'depmig-lsm: frozen group' | tr '\n' ';')"
dst=$(rig_domid $G)
status=$(xenstore-read /local/domain/$dst/data/depmig/status 2>/dev/null)
thawed=$(echo "$status" | sed -n 's/^[0-9]* thawed \([0-9]*\)$/\1/p')
[ -n "$thawed" ] && [ "$thawed" -ge 1 ] || rig_fail "the migrated guest's agent status is '$status', want '<seq> thawed N' with N >= 1"
grep -q "agent thawed $thawed group" /tmp/$G.depmig.log || rig_fail "the CLI did not report the thaw"
# The writer that stood frozen through the move checks its 4 MiB page by page.
GUEST_MUNCHER=quiet
qafter=$(guest_passes $G)
guest_wait_passes $G $((qafter + 2)) 400 || { guest_dump $G; rig_fail "the quiet mmuncher did not verify two passes after the migration (at $(guest_passes $G), wanted $((qafter + 2)))"; }
qpasses=$(guest_passes $G)
GUEST_MUNCHER=
guest_corrupt $G && rig_fail "mmuncher: $(guest_grep $G 'CORRUPT|quiet: (q[0-9]+ BAD|gone)' | head -n 1)"
dirty=$(json_list $R per_round_dirty)
tainted=$(json_list $R per_round_dirty_tainted)
free=$(json_list $R per_round_skipped_free)
rig_say "per round: dirty=[$dirty] dirty_tainted=[$tainted] skipped_free=[$free]; frozen_groups=$frozen, thawed after resume: $thawed ($status)"
rig_result PASS "depmig dependency-aware (appliance deaths retried: $DEPMIG_RETRIED): $(depmig_summary $R) dirty=[$dirty] dirty_tainted=[$tainted] skipped_free=[$free] frozen=$frozen (quiet pid $qpid) thawed=$thawed quiet verified to pass $qpasses cli=${MIGRATE_SECONDS}s"
