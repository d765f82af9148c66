#!/bin/sh
# migrate-smoke: depmig's appliances live-migrate a lightly loaded guest
# (ticker, and mmuncher over 16 MiB) once, on a fast link. Passes when the
# migration commits, the guest runs on the destination under its name, the
# source and every helper domain are gone, mmuncher verifies two more passes
# with no corrupt page and the ticker goes on.
. /rig/lib.sh
. /scenario/rig-guest.sh
. /scenario/baseline.sh
. /scenario/migrate.sh
G=guest
R=/tmp/depmig-smoke.json
guest_start $G ticker,mmuncher 512 depmig.mib=16 || { cat /tmp/$G.create.log; rig_fail "xl create failed: $(tail -n 1 /tmp/$G.create.log)"; }
guest_wait_passes $G 2 400 || { guest_dump $G; rig_fail "mmuncher did not verify 2 passes before the migration"; }
src=$(rig_domid $G)
ticks=$(guest_ticks $G)
rig_say "depmig: migrating $G (domid $src, mmuncher at pass $(guest_passes $G), ticker at $ticks) at $DEPMIG_LINK_RATE"
depmig_migrate $G $R /tmp/depmig-smoke.svg --scenario migrate-smoke --workload mmuncher-16MiB
rc=$?
[ -f $R ] && rig_export $R depmig-smoke.json
[ "$rc" = 0 ] || { guest_dump $G; xl list; rig_fail "depmig migrate failed (status $rc): $(tail -n 1 /tmp/$G.depmig.log)"; }
[ -f $R ] || rig_fail "depmig wrote no report"
rig_json report "$(tr -d '\n' < $R)"
depmig_check_moved $G "$src" "$ticks"
rig_result PASS "depmig: $(depmig_summary $R) cli=${MIGRATE_SECONDS}s; mmuncher verified to pass $(guest_passes $G)"
