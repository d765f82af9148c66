#!/bin/sh
# migrate-mmuncher: the 512 MiB guest running mmuncher (100 MiB rewritten as
# fast as it goes) and the ticker is live-migrated twice in one run over
# links held to the same rate: first by stock `xl migrate` (the baseline,
# as in baseline-mmuncher), then by depmig's appliances (`depmig migrate`,
# baseline mode, Xen 4.x policy). Passes when depmig's migration commits,
# the guest runs on the destination under its name, the source domain and
# every helper domain are gone, mmuncher verifies two more passes with no
# corrupt page, the ticker goes on, and both reports and the plot exist.
. /rig/lib.sh
. /scenario/rig-guest.sh
. /scenario/baseline.sh
. /scenario/migrate.sh
G=guest
B=/tmp/baseline-mmuncher.json
R=/tmp/depmig-mmuncher.json
guest_start $G ticker,mmuncher || { cat /tmp/$G.create.log; rig_fail "xl create failed: $(tail -n 1 /tmp/$G.create.log)"; }
guest_wait_passes $G 2 400 || { guest_dump $G; rig_fail "mmuncher did not verify 2 passes before the migration"; }

# 1. Stock xl migrate: the baseline of this run.
rig_say "stock: migrating $G (domid $(rig_domid $G)) at $DEPMIG_LINK_RATE"
baseline_migrate $G migrate-mmuncher mmuncher $B
rc=$?
[ "$rc" = 0 ] || { cat /tmp/$G.migrate.log; rig_fail "stock xl migrate failed (status $rc): $(tail -n 1 /tmp/$G.migrate.log)"; }
rig_wait_gone "$G--migratedaway" 60 || rig_fail "the stock migration's source is still there"
rig_export $B baseline-mmuncher.json
rig_json baseline "$(tr -d '\n' < $B)"
STOCK="$(baseline_summary $B) migrate=${MIGRATE_SECONDS}s"
rig_say "stock xl migrate: $STOCK"
after=$(guest_passes $G)
guest_wait_passes $G $((after + 1)) 400 || { guest_dump $G; rig_fail "mmuncher stopped after the stock migration"; }

# 2. depmig's appliances move the same guest.
src=$(rig_domid $G)
ticks=$(guest_ticks $G)
rig_say "depmig: migrating $G (domid $src, mmuncher at pass $(guest_passes $G), ticker at $ticks) at $DEPMIG_LINK_RATE"
depmig_migrate $G $R /tmp/depmig-mmuncher.svg --scenario migrate-mmuncher --workload mmuncher --baseline-report $B
rc=$?
[ -f $R ] && rig_export $R depmig-mmuncher.json
[ -f /tmp/depmig-mmuncher.svg ] && rig_export /tmp/depmig-mmuncher.svg depmig-mmuncher.svg
[ "$rc" = 0 ] || { guest_dump $G; rig_fail "depmig migrate failed (status $rc): $(tail -n 1 /tmp/$G.depmig.log)"; }
[ -f $R ] || rig_fail "depmig wrote no report"
[ -f /tmp/depmig-mmuncher.svg ] || rig_fail "depmig wrote no plot"
rig_json report "$(tr -d '\n' < $R)"
rig_say "depmig migrate took $MIGRATE_SECONDS s; $(depmig_summary $R)"
depmig_check_moved $G "$src" "$ticks"
rig_result PASS "depmig: $(depmig_summary $R) cli=${MIGRATE_SECONDS}s; stock xl: $STOCK; mmuncher verified to pass $(guest_passes $G)"
