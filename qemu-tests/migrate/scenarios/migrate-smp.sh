#!/bin/sh
# migrate-smp: a 256 MiB guest with 4 vCPUs, mmuncher running 4 threads over 64 MiB
# (each its own 16 MiB, each pinned to its own vCPU) and the ticker, moved
# live by depmig. Verdicts, each can fail:
#  1. the guest sees 4 CPUs and mmuncher pinned a thread to each;
#  2. the migration commits and the guest runs on the destination as in
#     migrate-smoke (nothing left, ticker advances, no corrupt page);
#  3. every vCPU came back: after the move `xl vcpu-list` shows all 4 vCPUs
#     online, and mmuncher's passes, the slowest thread's, advance by two
#     (a vCPU that did not resume would stall the thread pinned to it).
. /rig/lib.sh
. /scenario/rig-guest.sh
. /scenario/baseline.sh
. /scenario/migrate.sh
G=guest
R=/tmp/depmig-smp.json
VCPUS=4
RIG_GUEST_VCPUS=$VCPUS guest_start $G ticker,mmuncher 256 "depmig.mib=64 depmig.threads=$VCPUS" \
    || { cat /tmp/$G.create.log; rig_fail "xl create failed: $(tail -n 1 /tmp/$G.create.log)"; }
guest_wait_passes $G 2 600 || { guest_dump $G; rig_fail "mmuncher did not verify 2 passes before the migration"; }
cpus=$(guest_grep $G 'guest: init: kernel .*cpus [0-9]+' | sed 's/.*cpus \([0-9]*\).*/\1/' | head -n 1)
[ "$cpus" = "$VCPUS" ] || { guest_dump $G; rig_fail "the guest sees '$cpus' CPUs, want $VCPUS"; }
start=$(guest_grep $G 'mmuncher: start .*threads=' | head -n 1)
case $start in
    *"threads=$VCPUS cpus=$VCPUS pinned=0,1,2,3 "*) ;;
    *) guest_dump $G; rig_fail "mmuncher did not pin a thread to each vCPU: $start" ;;
esac
src=$(rig_domid $G)
ticks=$(guest_ticks $G)
rig_say "depmig: migrating $G (domid $src, $VCPUS vCPUs, mmuncher at pass $(guest_passes $G), ticker at $ticks) at $DEPMIG_LINK_RATE"
depmig_migrate $G $R /tmp/depmig-smp.svg --scenario migrate-smp --workload mmuncher-4x16MiB
rc=$?
[ -f $R ] && rig_export $R depmig-smp.json
[ "$rc" = 0 ] || { guest_dump $G; xl list; rig_fail "depmig migrate failed (status $rc): $(tail -n 1 /tmp/$G.depmig.log)"; }
[ -f $R ] || rig_fail "depmig wrote no report"
rig_json report "$(tr -d '\n' < $R)"
depmig_check_moved $G "$src" "$ticks"
xl vcpu-list $G | sed 's/^/DEPMIG-LOG vcpu-list| /'
# Name ID VCPU CPU State Time(s) Affinity: xl prints an offline vCPU
# (down, or never brought up) with CPU "-" and state "--p"; an online one
# with the CPU it last ran on and a state ending in "-".
online=$(xl vcpu-list $G | awk 'NR > 1 && $4 != "-" && $5 !~ /p$/' | wc -l)
[ "$online" = "$VCPUS" ] || rig_fail "$online of $VCPUS vCPUs online after the move"
rig_result PASS "4 vCPUs moved, all online after; depmig: $(depmig_summary $R) cli=${MIGRATE_SECONDS}s; mmuncher (4 pinned threads) verified to pass $(guest_passes $G)"
