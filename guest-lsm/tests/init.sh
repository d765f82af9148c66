#!/bin/busybox sh
# /init of the guest-lsm test initramfs. depmig_mode (kernel command line)
# selects the run: "suite" (all taint tests, dump window, benchmark) or
# "nolsm" (booted without bpf in lsm=: the agent must refuse).
/bin/busybox --install -s /bin
export PATH=/bin:/depmig
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs run /run
mount -t securityfs none /sys/kernel/security
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 none /sys/fs/cgroup
mkdir -p /run/depmig /mnt/persist
ip link set lo up
echo "GUEST-LSM active LSMs: $(cat /sys/kernel/security/lsm)"
AGENT="depmig-lsm-agent --bpf /depmig/depmig_lsm.bpf.o"

# verdict NAME OK DETAIL
verdict() { if [ "$2" = 0 ]; then echo "VERDICT $1 PASS $3"; else echo "VERDICT $1 FAIL $3"; fi; }

# expect_refusal NAME PATTERN CMD...: CMD must fail with PATTERN in its message.
expect_refusal() {
    name=$1; pat=$2; shift 2
    out=$("$@" 2>&1); rc=$?
    echo "$out" | grep -q "$pat"; found=$?
    [ $rc -ne 0 ] && [ $found -eq 0 ]; verdict "$name" $? "rc=$rc: $out"
}

if [ "$depmig_mode" = nolsm ]; then
    expect_refusal refuse-without-bpf-lsm "BPF LSM is not active" $AGENT --no-xenstore /run/depmig/publish
    echo GUEST-LSM-DONE
    poweroff -f
fi

for m in $(cat /depmig/modules.list); do insmod "$m" 2>/dev/null || true; done  # crc32c-intel needs SSE4.2
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mount -t ext4 /dev/vda /mnt/persist || echo "GUEST-LSM cannot mount the persistent disk"

expect_refusal refuse-without-xenstore "xenstore unreachable" $AGENT
expect_refusal refuse-without-btf "kernel BTF missing" $AGENT --btf /nonexistent/vmlinux --no-xenstore /run/depmig/publish

# The test driver starts before tracking does, with no tty: it must stay an
# untainted, independent group (this shell holds the console: tainted).
depmig-lsm-test suite < /dev/null > /run/suite.out 2>&1 &
suite=$!
$AGENT --no-xenstore /run/depmig/publish &
agent=$!
alive() { [ -r "/proc/$1/stat" ] && ! grep -q ') Z' "/proc/$1/stat"; }
# (no kill -0 here: a signal from this shell would merge it with the target)
while alive $suite; do
    alive $agent || { echo "GUEST-LSM the agent died"; break; }
    sleep 1
done
alive $suite || wait $suite
cat /run/suite.out
cat /run/depmig/publish

# The host pauses the VM and dumps RAM during the agent's 4 s window; wait
# with a builtin so that no process is created meanwhile (forks would
# change task entries).
echo "9 dump-window" > /run/depmig/control
read -t 10 _ < /dev/console || true

# Overhead: rounds alternating between programs attached and detached.
depmig-lsm-test bench-ab 12
kill $agent
wait $agent
echo GUEST-LSM-DONE
poweroff -f
