# dom0-side helpers for scenarios that run the rig's guest (installed as
# /scenario/rig-guest.sh by qemu-tests/guest/prep.sh; source after /rig/lib.sh).

# The runner's settings (DEPMIG_LINK_BYTES_PER_SEC is not exported by init).
[ -f /scenario/env ] && . /scenario/env

GUEST_KERNEL=/scenario/guest/vmlinuz
GUEST_INITRD=/scenario/guest/initrd.gz
# Debian's CONFIG_LSM already ends in bpf; the list is given explicitly so the
# guest-lsm program can rely on it whatever the kernel's default.
GUEST_LSM=lockdown,yama,integrity,apparmor,bpf
GUEST_IP_SUFFIX=10
GUEST_IP=$RIG_NET_PREFIX.$GUEST_IP_SUFFIX

# guest_start NAME WORKLOADS [MEM_MIB] [EXTRA_CMDLINE]: create the PVH guest
# running WORKLOADS (comma list: ticker, mmuncher, httpdl, httpd).
guest_start() {
    local name=$1 wl=$2 mem=${3:-512} extra=${4:-}
    rig_pvh_guest_cfg "/tmp/$name.cfg" "$name" "$GUEST_KERNEL" "$GUEST_INITRD" "$mem" \
        "console=hvc0 loglevel=4 lsm=$GUEST_LSM depmig.workload=$wl depmig.ip=$GUEST_IP depmig.server=$RIG_DOM0_IP $extra" \
        "$GUEST_IP_SUFFIX"
    xl create "/tmp/$name.cfg" >"/tmp/$name.create.log" 2>&1
}

# guest_logs NAME: the console logs of NAME, also of its incoming copy after a
# migration (xenconsoled names a log after the domain's name when it first sees it).
guest_logs() {
    ls "$RIG_CONSOLE_DIR/guest-$1.log" "$RIG_CONSOLE_DIR/guest-$1--incoming.log" 2>/dev/null
}

# guest_grep NAME ERE: matching console lines of NAME (all its logs).
guest_grep() {
    local f
    for f in $(guest_logs "$1"); do tr -d '\r' < "$f"; done | grep -aE "$2"
}

# guest_passes NAME: highest verified mmuncher pass printed so far (0 if none).
# A guest whose only mmuncher is the quiet one (stdout on /dev/null, so the
# taint tracker sees no interaction) sets GUEST_MUNCHER=quiet: its passes and
# verdict come from its process name, which the guest prints every few
# seconds as "quiet: q<passes> ok|BAD" (mmuncher --status-comm).
guest_passes() {
    if [ "${GUEST_MUNCHER:-}" = quiet ]; then
        guest_grep "$1" 'quiet: q[0-9]+ ' | sed 's/.*quiet: q\([0-9]*\) .*/\1/'
    else
        guest_grep "$1" 'mmuncher: verify ok passes=' | sed 's/.*passes=\([0-9]*\).*/\1/'
    fi | sort -n | tail -n 1 | grep . || echo 0
}

# guest_wait_passes NAME N SECONDS: wait until mmuncher verified N passes; 1 on
# timeout or when mmuncher reported corruption.
guest_wait_passes() {
    local i=0
    while [ "$i" -lt "$3" ]; do
        guest_corrupt "$1" && return 1
        [ "$(guest_passes "$1")" -ge "$2" ] && return 0
        sleep 2; i=$((i + 2))
    done
    return 1
}

# guest_corrupt NAME: 0 when mmuncher reported corruption (the quiet one:
# its name said BAD, or it is gone).
guest_corrupt() { guest_grep "$1" 'mmuncher: CORRUPT|quiet: (q[0-9]+ BAD|gone)' >/dev/null; }

# guest_ticks NAME: highest ticker count printed so far.
guest_ticks() {
    guest_grep "$1" '^ticker: n=' | sed 's/^ticker: n=\([0-9]*\).*/\1/' | sort -n | tail -n 1 | grep . || echo 0
}

# guest_dl_bytes NAME: bytes the HTTP download reported so far.
guest_dl_bytes() {
    guest_grep "$1" '^httpdl: bytes=' | sed 's/^httpdl: bytes=\([0-9]*\).*/\1/' | sort -n | tail -n 1 | grep . || echo 0
}

# guest_dump NAME: the console logs, for the serial log when something fails.
guest_dump() {
    local f
    for f in $(guest_logs "$1"); do echo "--- $f"; tr -d '\r' < "$f" | tail -n 40; done
}

# jnum FILE KEY: a top-level number of a report written by migpipe (2-space indent).
jnum() { sed -n "s/^  \"$2\": \([0-9][0-9.]*\),\{0,1\}$/\1/p" "$1" | head -n 1; }
# jlist FILE KEY: a top-level list of numbers, comma-separated.
jlist() { sed -n "s/^  \"$2\": \[\([0-9, ]*\)\],\{0,1\}$/\1/p" "$1" | tr -d ' ' | head -n 1; }
