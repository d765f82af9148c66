#!/bin/busybox sh
# /init of the walker's real-guest test: two quiet workers and one holding
# the serial console, started before tracking; the agent; a freeze; then
# the host dumps RAM while this shell waits without forking.
/bin/busybox --install -s /bin
export PATH=/bin:/depmig
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs run /run
mount -t securityfs none /sys/kernel/security
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 none /sys/fs/cgroup
mkdir -p /run/depmig
# Each worker keeps a string of N bytes in its heap (private frames).
sh -c 'x=$(head -c 3000000 /dev/zero | tr "\0" a); while :; do sleep 1; done' </dev/null >/dev/null 2>&1 &
q1=$!
sh -c 'x=$(head -c 2000000 /dev/zero | tr "\0" q); while :; do sleep 1; done' </dev/null >/dev/null 2>&1 &
q2=$!
sh -c 'exec 3>/dev/ttyS0; x=$(head -c 4000000 /dev/zero | tr "\0" t); while :; do sleep 1; done' </dev/null >/dev/null 2>&1 &
t1=$!
sleep 3
depmig-lsm-agent --bpf /depmig/depmig_lsm.bpf.o --no-xenstore /run/depmig/publish &
agent=$!
i=0
while ! grep -q tracking /run/depmig/publish 2>/dev/null && [ $i -lt 300 ]; do sleep 0.2; i=$((i + 1)); done
sleep 2
echo "1 freeze" > /run/depmig/control
i=0
while ! grep -q "^1 " /run/depmig/status 2>/dev/null && [ $i -lt 150 ]; do sleep 0.2; i=$((i + 1)); done
echo "WALKER status $(cat /run/depmig/status)"
for r in "q1 $q1" "q2 $q2" "t1 $t1" "agent $agent"; do
    set -- $r
    echo "WALKER role $1 pid $2 rss_kb $(awk '/^VmRSS/ { print $2 }' /proc/$2/status)"
done
sed 's/^/WALKER publish /' /run/depmig/publish
# Frames in free buddy blocks, by the kernel's own count.
echo "WALKER buddy_frames $(awk '{ p = 1; for (i = 5; i <= NF; i++) { n += $i * p; p *= 2 } } END { print n }' /proc/buddyinfo)"
echo "WALKER-DUMP-NOW"
read -t 30 _ < /dev/console || true
echo "WALKER-DONE"
poweroff -f
