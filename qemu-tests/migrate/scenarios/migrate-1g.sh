#!/bin/sh
# migrate-1g, migrate-2g: a 1 GiB or 2 GiB guest (the paper's had 2 GiB;
# the size is the scenario's name) running mmuncher over 100 MiB (the
# paper's dirtier) and the ticker, moved twice at the same link rate: by
# stock `xl migrate`, then by depmig (baseline mode, Xen 4.x policy). Not in
# the default run (slow under emulation): run for the figures, which the
# result line holds for both moves, with the appliances' largest heap use
# (KiB, from their progress lines) and that per GiB of guest. Each move is
# verified as in migrate-smoke.
. /rig/lib.sh
. /scenario/rig-guest.sh
. /scenario/baseline.sh
. /scenario/migrate.sh
case $DEPMIG_SCENARIO in
    *-2g) MIB=2048 ;;
    *) MIB=1024 ;;
esac
G=guest
B=/tmp/baseline-$DEPMIG_SCENARIO.json
R=/tmp/depmig-$DEPMIG_SCENARIO.json

# heap_peak NAME: the largest "heap X of Y KiB" appliance NAME printed (KiB).
heap_peak() {
    tr -d '\r' < "$(rig_console_log "$1")" 2>/dev/null \
        | grep -o 'heap [0-9]* of [0-9]* KiB' | awk '$2 > m { m = $2 } END { print m + 0 }'
}

guest_start $G ticker,mmuncher $MIB depmig.mib=100 || { cat /tmp/$G.create.log; rig_fail "xl create failed: $(tail -n 1 /tmp/$G.create.log)"; }
guest_wait_passes $G 2 600 || { guest_dump $G; rig_fail "mmuncher did not verify 2 passes before the migration"; }

# 1. Stock xl migrate.
rig_say "stock: migrating $G ($MIB MiB, domid $(rig_domid $G)) at $DEPMIG_LINK_RATE"
baseline_migrate $G $DEPMIG_SCENARIO mmuncher $B
rc=$?
[ "$rc" = 0 ] || { cat /tmp/$G.migrate.log; rig_fail "stock xl migrate failed (status $rc): $(tail -n 1 /tmp/$G.migrate.log)"; }
rig_wait_gone "$G--migratedaway" 60 || rig_fail "the stock migration's source is still there"
rig_export $B baseline-$DEPMIG_SCENARIO.json
rig_json baseline "$(tr -d '\n' < $B)"
STOCK="$(baseline_summary $B) migrate=${MIGRATE_SECONDS}s"
after=$(guest_passes $G)
guest_wait_passes $G $((after + 1)) 600 || { guest_dump $G; rig_fail "mmuncher stopped after the stock migration"; }

# 2. depmig.
src=$(rig_domid $G)
ticks=$(guest_ticks $G)
rig_say "depmig: migrating $G ($MIB MiB, domid $src) at $DEPMIG_LINK_RATE"
depmig_migrate $G $R /tmp/depmig-$DEPMIG_SCENARIO.svg --scenario $DEPMIG_SCENARIO --workload mmuncher --baseline-report $B
rc=$?
[ -f $R ] && rig_export $R depmig-$DEPMIG_SCENARIO.json
[ "$rc" = 0 ] || { guest_dump $G; rig_fail "depmig migrate failed (status $rc): $(tail -n 1 /tmp/$G.depmig.log)"; }
[ -f $R ] || rig_fail "depmig wrote no report"
rig_json report "$(tr -d '\n' < $R)"
depmig_check_moved $G "$src" "$ticks"
hs=$(heap_peak "$G--depmig-src") hd=$(heap_peak "$G--depmig-dst")
per=$(awk -v s="$hs" -v d="$hd" -v m="$MIB" 'BEGIN { printf "%.0f/%.0f", s * 1024 / m, d * 1024 / m }')
rig_json appliance_heap "{\"guest_mib\":$MIB,\"source_peak_kib\":$hs,\"destination_peak_kib\":$hd}"
rig_result PASS "$MIB MiB guest. depmig: $(depmig_summary $R) cli=${MIGRATE_SECONDS}s; stock xl: $STOCK; appliance heap peak source ${hs} KiB, destination ${hd} KiB (${per} KiB per GiB of guest); mmuncher verified to pass $(guest_passes $G)"
