#!/bin/sh
# two-host-net: the link between the rig's two hosts. Host a's dom0 reaches
# host b's across it, by ssh too; a fixed amount of data goes dom0 to dom0 (busybox nc,
# the path xl migrate's stream takes between hosts) and appliance to
# appliance (smoltcp on netfront, the path depmig's pages take), each host's
# domain on its own host's bridge. Host b's part (two-host-net.hostb)
# reports what arrived there. Prints both rates and their ratio.
. /rig/lib.sh

BYTES=${NET_BYTES:-33554432}

up() { cut -d' ' -f1 /proc/uptime; }
mibs() { awk -v b="$1" -v s="$2" 'BEGIN { if (s <= 0) s = 0.001; printf "%.2f", b / s / 1048576 }'; }

rig_wait_peer 600
rig_say "host a: host b's dom0 answers at $RIG_PEER_DOM0_IP"

# 0. ssh, the operator's path between the dom0s (depmig receive runs
# through it): a command on host b, with the rig's key.
i=0
until there=$(ssh "$RIG_PEER_DOM0_IP" 'grep -o "rig.host=[ab]" /proc/cmdline' 2>/tmp/ssh.err); do
    i=$((i + 1)); [ "$i" -lt 30 ] || rig_fail "ssh to host b failed: $(tail -n 1 /tmp/ssh.err)"
    sleep 2
done
[ "$there" = rig.host=b ] || rig_fail "ssh to $RIG_PEER_DOM0_IP reached '$there', not host b"
rig_say "host a: ssh to host b runs commands there ($there)"

# listen PORT FILE: keeps what host b sends on PORT in FILE (whole once
# FILE exists), in the background.
listen() {
    printf '#!/bin/sh\ncat > %s.part && mv %s.part %s\n' "$2" "$2" "$2" > "/tmp/save-$1.sh"
    chmod +x "/tmp/save-$1.sh"
    nc -l -p "$1" -e "/tmp/save-$1.sh" &
}

# 1. dom0 to dom0.
listen 5003 /tmp/dom0-report
t0=$(up)
i=0
until dd if=/dev/zero bs=65536 count=$((BYTES / 65536)) 2>/dev/null | nc "$RIG_PEER_DOM0_IP" 5002; do
    i=$((i + 1)); [ "$i" -lt 60 ] || rig_fail "nc to host b's dom0 failed"
    sleep 1; t0=$(up)
done
i=0
while [ ! -s /tmp/dom0-report ]; do
    i=$((i + 1)); [ "$i" -lt 600 ] || rig_fail "host b's dom0 reported nothing"
    sleep 0.2
done
t1=$(up)
got=$(head -n 1 /tmp/dom0-report)
[ "$got" = "$BYTES" ] || rig_fail "host b's dom0 received $got of $BYTES bytes"
dom0=$(mibs "$BYTES" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
rig_say "host a: dom0 -> dom0 $dom0 MiB/s"

# 2. Appliance to appliance: host b's receiver (10.77.0.121) is up already
# or comes up; the sender retries its connection meanwhile.
listen 5004 /tmp/app-report
rig_appliance net-send-a nettest 48 "vif = [ \"bridge=$RIG_BRIDGE,mac=$(rig_mac 22)\" ]"
rig_appliance_config net-send-a depmig/net ip=10.77.0.22 prefix=24 role=send port=7000 bytes=$BYTES peer=10.77.0.121
xl unpause net-send-a
i=0
while [ ! -s /tmp/app-report ]; do
    i=$((i + 1)); [ "$i" -lt 1200 ] || break
    sleep 1
done
send=$(rig_console_text net-send-a | grep -E '^depmig-nettest: (PASS|FAIL)' | tail -n 1)
rig_console_text net-send-a | sed 's/^/DEPMIG-LOG net-send-a| /'
xl destroy net-send-a 2>/dev/null
recv=$(head -n 1 /tmp/app-report)
rig_say "host a: sender: $send"
rig_say "host a: host b's receiver: $recv"
case $recv in "depmig-nettest: PASS recv $BYTES bytes "*) ;; *) rig_fail "host b's receiving appliance: ${recv:-no report} (sender: $send)" ;; esac
app=$(echo "$recv" | awk '{ print $(NF-1) }')
ratio=$(awk -v a="$app" -v r="$dom0" 'BEGIN { if (r <= 0) r = 0.001; printf "%.2f", a / r }')
rig_json throughput "{\"bytes\":$BYTES,\"appliance_a_to_b_mib_s\":$app,\"dom0_a_to_b_mib_s\":$dom0,\"ratio\":$ratio}"
rig_result PASS "ssh to host b works; across the link: appliance->appliance $app MiB/s, dom0->dom0 $dom0 MiB/s (ratio $ratio) over $BYTES bytes"
