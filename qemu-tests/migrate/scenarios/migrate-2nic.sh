#!/bin/sh
# migrate-2nic: a 256 MiB guest with two vifs, eth0 on xenbr0 (10.77.0.10) and eth1
# on the second bridge xenbr1 (10.78.0.10), running the ticker, mmuncher and
# the HTTP server, moved live by depmig. Verdicts, each can fail:
#  1. before the move dom0 gets an HTTP answer from the guest on both
#     addresses;
#  2. the migration commits and the guest runs on the destination as in
#     migrate-smoke (nothing left, ticker advances, no corrupt page);
#  3. after the move the destination domain has both vifs, and dom0 gets an
#     HTTP answer on both addresses again.
. /rig/lib.sh
. /scenario/rig-guest.sh
. /scenario/baseline.sh
. /scenario/migrate.sh
G=guest
R=/tmp/depmig-2nic.json
IP1=$GUEST_IP
IP2=$RIG_NET2_PREFIX.$GUEST_IP_SUFFIX

# http_ok IP: dom0 gets an HTTP status line from the guest's server at IP
# (a few tries: the address may take a moment to answer after a move).
http_ok() {
    local i=0 line
    while [ "$i" -lt 10 ]; do
        line=$(printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 "$1" 80 2>/dev/null | head -n 1 | tr -d '\r')
        case $line in HTTP/1.*) echo "$line"; return 0 ;; esac
        i=$((i + 1)); sleep 2
    done
    return 1
}

RIG_GUEST_VIF2=1 guest_start $G ticker,mmuncher,httpd 256 "depmig.mib=16 depmig.ip2=$IP2" \
    || { cat /tmp/$G.create.log; rig_fail "xl create failed: $(tail -n 1 /tmp/$G.create.log)"; }
guest_wait_passes $G 2 400 || { guest_dump $G; rig_fail "mmuncher did not verify 2 passes before the migration"; }
guest_grep $G "guest: eth1 $IP2/" > /dev/null || { guest_dump $G; rig_fail "the guest did not bring eth1 up"; }
for ip in $IP1 $IP2; do
    s=$(http_ok $ip) || { guest_dump $G; rig_fail "no HTTP answer from $ip before the move"; }
    rig_say "before: $ip answers '$s'"
done
src=$(rig_domid $G)
ticks=$(guest_ticks $G)
rig_say "depmig: migrating $G (domid $src, vifs on $RIG_BRIDGE and $RIG_BRIDGE2, mmuncher at pass $(guest_passes $G), ticker at $ticks) at $DEPMIG_LINK_RATE"
depmig_migrate $G $R /tmp/depmig-2nic.svg --scenario migrate-2nic --workload mmuncher-16MiB+httpd
rc=$?
[ -f $R ] && rig_export $R depmig-2nic.json
[ "$rc" = 0 ] || { guest_dump $G; xl list; rig_fail "depmig migrate failed (status $rc): $(tail -n 1 /tmp/$G.depmig.log)"; }
[ -f $R ] || rig_fail "depmig wrote no report"
rig_json report "$(tr -d '\n' < $R)"
depmig_check_moved $G "$src" "$ticks"
xl network-list $G | sed 's/^/DEPMIG-LOG network-list| /'
n=$(xl network-list $G | awk 'NR > 1' | wc -l)
[ "$n" = 2 ] || rig_fail "the migrated guest has $n vifs, want 2"
after=
for ip in $IP1 $IP2; do
    s=$(http_ok $ip) || { guest_dump $G; rig_fail "no HTTP answer from $ip after the move"; }
    after="$after $ip"
done
rig_result PASS "both vifs answer after the move ($(echo $after)); depmig: $(depmig_summary $R) cli=${MIGRATE_SECONDS}s; mmuncher verified to pass $(guest_passes $G)"
