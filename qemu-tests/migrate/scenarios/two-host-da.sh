#!/bin/sh
# two-host-da: migrate-paper-da's guest (guest-lsm's agent, the console
# mmuncher and ticker, a quiet untainted mmuncher) moved from host a to
# host b in dependency-aware mode, as an operator runs it (`depmig migrate
# guest HOST`, ssh to host b's `depmig receive`; the stream sealed, the
# default across hosts). Verdicts, each can fail:
#  1. the agent tracks on host a;
#  2. the move commits, nothing of the guest or of depmig is left on host a;
#  3. on host b the guest runs alone, mmuncher verifies two more passes and
#     the ticker goes on (depmig_check_moved, run there);
#  4. the source froze at least one group, the quiet mmuncher among them;
#     after the unpause host b's depmig receive had the agent thaw them
#     (its status `<seq> thawed N`, N >= 1, in the new domain's home on
#     host b), and the quiet mmuncher verifies two more passes there.
# Not in the default run.
. /rig/lib.sh
. /scenario/rig-guest.sh
. /scenario/baseline.sh
. /scenario/migrate.sh
G=guest
R=/tmp/depmig-two-host-da.json
B=$RIG_PEER_DOM0_IP
depmig_install
depmig_wait_host_b "$B"

guest_start $G ticker,mmuncher 256 depmig.mib=4 || { cat /tmp/$G.create.log; rig_fail "xl create failed: $(tail -n 1 /tmp/$G.create.log)"; }
src=$(rig_domid $G)
[ -n "$src" ] || rig_fail "no domid for $G"
depmig_wait_agent $G /local/domain/$src/data/depmig
rig_say "agent tracking after ${AGENT_WAITED} s more"
guest_wait_passes $G 2 400 || { guest_dump $G; rig_fail "mmuncher did not verify 2 passes before the migration"; }
qpid=$(guest_grep $G 'paper: quiet mmuncher pid [0-9]+' | sed 's/.*pid \([0-9]*\).*/\1/' | head -n 1)
[ -n "$qpid" ] || { guest_dump $G; rig_fail "the hook did not start the quiet mmuncher"; }
GUEST_MUNCHER=quiet
guest_wait_passes $G 2 400 || { guest_dump $G; rig_fail "the quiet mmuncher did not verify 2 passes before the migration"; }
qbefore=$(guest_passes $G)
GUEST_MUNCHER=
ticks=$(guest_ticks $G)
rig_say "depmig: migrating $G (domid $src, mmuncher at pass $(guest_passes $G), quiet at $qbefore, ticker at $ticks) to host b in dependency-aware mode at $DEPMIG_LINK_RATE"
depmig_migrate $G $R /tmp/depmig-two-host-da.svg "$B" --mode dependency-aware --timeout 3000 \
    --scenario two-host-da --workload mmuncher-4MiB+quiet-mmuncher-4MiB
rc=$?
[ -f $R ] && rig_export $R depmig-two-host-da.json
[ "$rc" = 0 ] || { xl list; rig_fail "depmig migrate $G $B ended with status $rc: $(tail -n 1 /tmp/$G.depmig.log)"; }
[ -f $R ] || rig_fail "depmig wrote no report"
rig_json report "$(tr -d '\n' < $R)"
left=$(rig_domains | tr '\n' ' ')
[ -z "$left" ] || rig_fail "domains left on host a after the migration: $left"
frozen=$(grep -o '"frozen_groups": *[0-9]*' $R | head -n 1 | sed 's/.*: *//')
[ "${frozen:-0}" -ge 1 ] || rig_fail "the source froze no group (frozen_groups=${frozen:-missing})"
# The agent said whom it froze on host a's console, before the move.
guest_grep $G 'depmig-lsm: frozen group [0-9]+: pids ' | sed 's/.*: pids //' | tr ',' '\n' | grep -qx "$qpid" \
    || rig_fail "the quiet mmuncher (pid $qpid) is in no frozen group: $(guest_grep $G 'depmig-lsm: frozen group' | tr '\n' ';')"
# Host b: the guest, its workloads, the frozen writer and the thaw, checked
# there (the console logs are host b's); a failure comes back as text.
out=$(ssh "$B" ". /rig/lib.sh; . /scenario/rig-guest.sh; . /scenario/baseline.sh; . /scenario/migrate.sh
depmig_check_moved $G '' $ticks || exit 1
dst=\$(rig_domid $G)
status=\$(xenstore-read /local/domain/\$dst/data/depmig/status 2>/dev/null)
thawed=\$(echo \"\$status\" | sed -n 's/^[0-9]* thawed \([0-9]*\)\$/\1/p')
[ -n \"\$thawed\" ] && [ \"\$thawed\" -ge 1 ] || rig_fail \"the migrated guest's agent status is '\$status', want '<seq> thawed N' with N >= 1\"
GUEST_MUNCHER=quiet
q=\$(guest_passes $G)
guest_wait_passes $G \$((q + 2)) 400 || rig_fail \"the quiet mmuncher did not verify two passes on host b (at \$(guest_passes $G), wanted \$((q + 2)))\"
guest_corrupt $G && rig_fail \"mmuncher: \$(guest_grep $G 'CORRUPT|quiet: (q[0-9]+ BAD|gone)' | head -n 1)\"
rig_say \"thawed \$thawed group(s) (\$status); quiet mmuncher verified to pass \$(guest_passes $G)\"
echo CHECKED" 2>&1)
echo "$out" | grep -a '^DEPMIG-LOG' | sed 's/^DEPMIG-LOG /DEPMIG-LOG host b: /'
echo "$out" | grep -q '^CHECKED$' \
    || rig_fail "on host b: $(echo "$out" | grep -a '^DEPMIG-RESULT' | sed 's/^DEPMIG-RESULT FAIL //' | tail -n 1)"
grep -q "thawed [0-9]* group" /tmp/$G.depmig.log || rig_fail "the CLI did not report the thaw"
dirty=$(json_list $R per_round_dirty)
free=$(json_list $R per_round_skipped_free)
rig_result PASS "host a -> host b, dependency-aware: $(depmig_summary $R) dirty=[$dirty] skipped_free=[$free] frozen=$frozen (quiet pid $qpid) cli=${MIGRATE_SECONDS}s; guest, quiet writer and thaw verified on host b"
