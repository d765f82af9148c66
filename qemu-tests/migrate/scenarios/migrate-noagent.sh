#!/bin/sh
# migrate-noagent: the guest of migrate-smoke, which runs no guest agent, is
# migrated with `--mode dependency-aware`. depmig cannot know its processes'
# dependencies, so it migrates it in baseline mode instead of refusing it.
# Verdicts, each can fail:
#  1. `--require-agent` refuses the guest (status 2) and creates nothing;
#  2. without it, the CLI says why it falls back before it creates anything,
#     the migration commits and the guest runs on the destination as in
#     migrate-smoke (mmuncher verifies, ticker advances, nothing left);
#  3. the report says the mode run (`baseline`), the mode asked for and the
#     reason, and the source appliance ran in baseline mode (no tainted or
#     frozen figure in its rounds).
. /rig/lib.sh
. /scenario/rig-guest.sh
. /scenario/baseline.sh
. /scenario/migrate.sh
G=guest
R=/tmp/depmig-noagent.json
guest_start $G ticker,mmuncher 512 depmig.mib=16 || { cat /tmp/$G.create.log; rig_fail "xl create failed: $(tail -n 1 /tmp/$G.create.log)"; }
guest_wait_passes $G 2 400 || { guest_dump $G; rig_fail "mmuncher did not verify 2 passes before the migration"; }
src=$(rig_domid $G)
state=$(xenstore-read "/local/domain/$src/data/depmig/state" 2>/dev/null)
[ "$state" != tracking ] || rig_fail "this guest was meant to run no agent, but its state is 'tracking'"

# 1. Refused when the agent is required.
"$DEPMIG" migrate $G --config /tmp/$G.cfg --appliance "$DEPMIG_IMAGE" \
    --mode dependency-aware --require-agent > /tmp/$G.required.log 2>&1
rc=$?
sed "s/^/DEPMIG-LOG required| /" /tmp/$G.required.log
[ "$rc" = 2 ] || rig_fail "--require-agent: status $rc, want 2 (refused): $(tail -n 1 /tmp/$G.required.log)"
grep -q 'needs the guest agent' /tmp/$G.required.log || rig_fail "--require-agent: the refusal does not name the agent"
left=$(rig_domains | grep -v "^$G\$")
[ -z "$left" ] || rig_fail "the refused migration created domains: $(echo $left)"

# 2. The fallback.
ticks=$(guest_ticks $G)
rig_say "depmig: migrating $G (domid $src, no agent, mmuncher at pass $(guest_passes $G), ticker at $ticks) asking for dependency-aware mode at $DEPMIG_LINK_RATE"
depmig_migrate $G $R /tmp/depmig-noagent.svg --mode dependency-aware --scenario migrate-noagent --workload mmuncher-16MiB
rc=$?
[ -f $R ] && rig_export $R depmig-noagent.json
[ "$rc" = 0 ] || { guest_dump $G; xl list; rig_fail "depmig migrate failed (status $rc): $(tail -n 1 /tmp/$G.depmig.log)"; }
first=$(grep -n 'migrating in baseline mode instead' /tmp/$G.depmig.log | head -n 1 | cut -d: -f1)
created=$(grep -n 'creating' /tmp/$G.depmig.log | head -n 1 | cut -d: -f1)
[ -n "$first" ] || rig_fail "the CLI did not say it falls back to baseline"
[ -z "$created" ] || [ "$first" -lt "$created" ] || rig_fail "the fallback was said only after domains were created"
[ -f $R ] || rig_fail "depmig wrote no report"
rig_json report "$(tr -d '\n' < $R)"
depmig_check_moved $G "$src" "$ticks"

# 3. The report.
tr -d '\n' < $R | grep -q '"mode":"baseline","requested_mode":"dependency-aware","mode_fallback":"[^"]*guest agent' \
    || rig_fail "the report's cli figures do not record the fallback: $(tr -d '\n' < $R | grep -o '"cli":{[^}]*' | head -c 400)"
tr -d '\n' < $R | grep -q '"depmig":{"mode":"baseline"' || rig_fail "the source appliance's report does not say baseline"
rig_result PASS "fell back to baseline without an agent (--require-agent refused it); depmig: $(depmig_summary $R) cli=${MIGRATE_SECONDS}s; mmuncher verified to pass $(guest_passes $G)"
