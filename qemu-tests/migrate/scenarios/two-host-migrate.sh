#!/bin/sh
# two-host-migrate: `depmig migrate guest HOST` from host a to host b, as an
# operator runs it: the source's depmig starts `depmig receive` on host b
# through ssh; the shell and the destination appliance are host b's, the
# pages go appliance to appliance across the link between the hosts. The
# guest (ticker, mmuncher over 16 MiB) must then run on host b alone, with
# mmuncher verifying two more passes there and its ticker going on, every
# page compared (--verify), and nothing of it or of depmig left on host a.
. /rig/lib.sh
. /scenario/rig-guest.sh
. /scenario/baseline.sh
. /scenario/migrate.sh
G=guest
R=/tmp/depmig-two-host.json
B=$RIG_PEER_DOM0_IP
depmig_install
depmig_wait_host_b "$B"

guest_start $G ticker,mmuncher 512 depmig.mib=16 || { cat /tmp/$G.create.log; rig_fail "xl create failed: $(tail -n 1 /tmp/$G.create.log)"; }
guest_wait_passes $G 2 400 || { guest_dump $G; rig_fail "mmuncher did not verify 2 passes before the migration"; }
src=$(rig_domid $G)
ticks=$(guest_ticks $G)
rig_say "depmig: migrating $G (domid $src, mmuncher at pass $(guest_passes $G), ticker at $ticks) to host b at $DEPMIG_LINK_RATE"
depmig_migrate $G $R /tmp/depmig-two-host.svg "$B" --verify --scenario two-host-migrate --workload mmuncher-16MiB
rc=$?
[ -f $R ] && rig_export $R depmig-two-host.json
[ "$rc" = 0 ] || { xl list; rig_fail "depmig migrate $G $B failed (status $rc): $(tail -n 1 /tmp/$G.depmig.log)"; }
[ -f $R ] || rig_fail "depmig wrote no report"
rig_json report "$(tr -d '\n' < $R)"
verified=$(grep -a 'depmig: page verification: ' "/tmp/$G.depmig.log" | tail -n 1)
case $verified in
    "depmig: page verification: match;"*) rig_say "${verified#depmig: }" ;;
    *) rig_fail "the move was not verified page by page: '${verified:-no page verification line}'" ;;
esac
# Host a: nothing of the guest or of depmig.
left=$(rig_domains | tr '\n' ' ')
[ -z "$left" ] || rig_fail "domains left on host a after the migration: $left"
# Host b: the guest runs there alone, its workloads go on (the same check
# as on one host, run there; its failure comes back as text).
out=$(ssh "$B" ". /rig/lib.sh; . /scenario/rig-guest.sh; . /scenario/baseline.sh; . /scenario/migrate.sh; depmig_check_moved $G '' $ticks && echo CHECKED" 2>&1)
echo "$out" | grep -a '^DEPMIG-LOG' | sed 's/^DEPMIG-LOG /DEPMIG-LOG host b: /'
echo "$out" | grep -q '^CHECKED$' \
    || rig_fail "on host b: $(echo "$out" | grep -a '^DEPMIG-RESULT' | sed 's/^DEPMIG-RESULT FAIL //' | tail -n 1)"
rig_result PASS "host a -> host b: $(depmig_summary $R) cli=${MIGRATE_SECONDS}s; verified page by page; mmuncher goes on at host b"
