#!/bin/sh
# appliance-guestctl: the appliance (mode guestctl, labelled
# depmig_appliance_t) exercises what a migration needs against the running
# rig guest G (two vCPUs, ticker and mmuncher) and a paused shell S made from
# G's config: domain info, HVM params, foreign mapping (per-entry errors, the
# kernel banner, throughput), log-dirty while running and paused, the HVM
# context, TSC info, context/params/TSC/populate/map-write on S, and a
# cooperative suspend followed by a cancelled resume. It prints one line per
# check and "depmig-guestctl: PASS|FAIL ...".
# dom0's side: grants the appliance read on G's store/ring-ref and write on
# G's control/shutdown, unpauses G when the appliance asks (appliances may
# pause but not unpause), then checks that G still runs (ticker advances,
# mmuncher verifies with no corrupt page) and that G and S can be destroyed
# completely (no foreign mapping left behind).
. /rig/lib.sh
. /scenario/rig-guest.sh

G=guest
S=guest-shell
A=depmig-guestctl
IMG=/scenario/depmig-appliance

cleanup() { xl destroy "$A" 2>/dev/null; xl destroy "$S" 2>/dev/null; xl unpause "$G" 2>/dev/null; }

# keep_console NAME: a domain's console into the serial log, line by line.
keep_console() {
    tr -d '\r' < "$(rig_console_log "$1")" > "/tmp/$1.log" 2>/dev/null
    sed "s/^/DEPMIG-LOG $1| /" "/tmp/$1.log"
}

# 1. The guest, two vCPUs so the context must hold two CPU records.
rig_pvh_guest_cfg "/tmp/$G.cfg" "$G" "$GUEST_KERNEL" "$GUEST_INITRD" 512 \
    "console=hvc0 loglevel=4 depmig.workload=ticker,mmuncher depmig.ip=$GUEST_IP depmig.server=$RIG_DOM0_IP" \
    "$GUEST_IP_SUFFIX"
sed -i 's/^vcpus = 1$/vcpus = 2/' "/tmp/$G.cfg"
grep -q '^vcpus = 2$' "/tmp/$G.cfg" || rig_fail "could not set two vCPUs in the guest's config"
xl create "/tmp/$G.cfg" > "/tmp/$G.create.log" 2>&1 \
    || { cat "/tmp/$G.create.log"; rig_fail "xl create $G: $(tail -n 1 /tmp/$G.create.log)"; }
guest_wait_passes "$G" 1 900 || { guest_dump "$G"; rig_fail "mmuncher did not verify a pass"; }
gid=$(rig_domid "$G")
rig_say "guest $G is domid $gid, mmuncher at pass $(guest_passes "$G"), ticker at $(guest_ticks "$G")"

# 2. The shell: the guest's config under another name, created paused.
sed "s/^name = .*/name = \"$S\"/" "/tmp/$G.cfg" > "/tmp/$S.cfg"
xl create -p "/tmp/$S.cfg" > /tmp/create.out 2>&1 \
    || { cat /tmp/create.out; cleanup; rig_fail "xl create -p $S: $(tail -n 1 /tmp/create.out)"; }
sid=$(rig_domid "$S")

# 3. The appliance, paused until its configuration is written.
rm -f "$(rig_console_log "$A")"
cat > "/tmp/$A.cfg" <<CFG
name = "$A"
type = "pvh"
kernel = "$IMG"
cmdline = "guestctl"
memory = 64
vcpus = 1
seclabel = "$RIG_LABEL_APPLIANCE"
on_poweroff = "destroy"
on_crash = "preserve"
CFG
xl create -p "/tmp/$A.cfg" > /tmp/create.out 2>&1 \
    || { cat /tmp/create.out; cleanup; rig_fail "xl create $A: $(tail -n 1 /tmp/create.out)"; }
aid=$(rig_domid "$A")
rig_say "shell $S is domid $sid, appliance $A is domid $aid"
d=/local/domain/$aid/depmig/guestctl
xenstore-write "$d/guest" "$gid" "$d/shell" "$sid" "$d/request" none "$d/reply" none \
    "$d/bitmap-copy" "$(cat /scenario/bitmap-copy 2>/dev/null || echo 0)" \
    || { cleanup; rig_fail "writing the appliance's configuration"; }
# The appliance owns its request node; dom0 answers in reply (read-only to it).
xenstore-chmod "$d/request" "n$aid" || { cleanup; rig_fail "xenstore-chmod request"; }
xenstore-ls -p "/local/domain/$gid" 2>/dev/null | grep -E '^ *(ring-ref|shutdown) ' | sed 's/^/DEPMIG-LOG perms before: /'
# The guest's owner and its own rights stay; the appliance is added.
xenstore-chmod "/local/domain/$gid/store/ring-ref" n0 "r$gid" "r$aid" \
    || { cleanup; rig_fail "xenstore-chmod store/ring-ref"; }
xenstore-chmod "/local/domain/$gid/control/shutdown" "n$gid" "b$aid" \
    || { cleanup; rig_fail "xenstore-chmod control/shutdown"; }
ticks0=$(guest_ticks "$G")
xl unpause "$A"

# 4. Serve the appliance's requests until its result line.
con=$(rig_console_log "$A")
result= i=0 answered=
while [ "$i" -lt 1500 ]; do
    result=$(tr -d '\r' < "$con" 2>/dev/null | grep -E '^depmig-guestctl: (PASS|FAIL)' | tail -n 1)
    [ -n "$result" ] && break
    req=$(xenstore-read "$d/request" 2>/dev/null)
    case $req in
        "unpause "*)
            n=${req#unpause }
            if [ "$answered" != "$n" ]; then
                rig_say "appliance asks: $req (guest state $(xl list "$G" | awk 'NR == 2 { print $5 }'))"
                xl unpause "$G" || rig_say "xl unpause $G failed"
                xenstore-write "$d/reply" "unpaused $n"
                answered=$n
            fi
            ;;
    esac
    sleep 1; i=$((i + 1))
done
keep_console "$A"
[ -n "$result" ] || { cleanup; guest_dump "$G"; rig_fail "appliance: no result line within $i s: $(tail -n 1 "/tmp/$A.log")"; }
rig_say "appliance: $result"
rig_wait_gone "$A" 60 || { cleanup; rig_fail "the appliance did not power itself off"; }

# Figures from the appliance's console.
kv() {
    local v
    v=$(sed -n "s/^depmig-guestctl: $1.* $2=\([0-9]*\).*/\1/p" "/tmp/$A.log" | tail -n 1)
    echo "${v:-null}"
}
rig_json guestctl "{\"map_pages_per_s_batch64\":$(kv 'map throughput batch=64 ' pages_per_s),\"map_pages_per_s_batch256\":$(kv 'map throughput batch=256 ' pages_per_s),\"map_pages_per_s_batch1024\":$(kv 'map throughput batch=1024 ' pages_per_s),\"dirty_running_3s\":$(kv 'dirty pages' running_3s),\"dirty_paused_3s\":$(kv 'dirty pages' paused_3s),\"dirty_after_unpause_3s\":$(kv 'dirty pages' after_unpause_3s),\"suspend_ms\":$(kv 'suspend resume' suspend_ms),\"resume_ms\":$(kv 'suspend resume' resume_ms)}" \
    || rig_say "figures incomplete"

# 5. The guest still runs: not paused, not shut down, its ticker advances and
# mmuncher verifies another pass without corruption.
state=$(xl list "$G" | awk 'NR == 2 { print $5 }')
rig_say "guest state after the appliance: $state; ticker $ticks0 -> $(guest_ticks "$G")"
case $state in *s*|*p*|*c*|*d*) cleanup; guest_dump "$G"; rig_fail "guest state '$state' after the appliance" ;; esac
t1=$(guest_ticks "$G")
sleep 20
t2=$(guest_ticks "$G")
[ "$t2" -gt "$t1" ] || { cleanup; guest_dump "$G"; rig_fail "the guest's ticker stopped at $t1"; }
p=$(guest_passes "$G")
guest_wait_passes "$G" $((p + 1)) 600 || { cleanup; guest_dump "$G"; rig_fail "mmuncher did not verify a pass after the appliance (at $(guest_passes "$G"))"; }
guest_corrupt "$G" && { cleanup; rig_fail "mmuncher: $(guest_grep "$G" 'CORRUPT' | head -n 1)"; }
guest_dump "$G"

# 6. Shell and guest go completely: nothing of them stays mapped.
xl destroy "$S"
rig_wait_gone "$S" 60 || rig_fail "the shell cannot be destroyed completely"
xl destroy "$G"
rig_wait_gone "$G" 60 || rig_fail "the guest cannot be destroyed completely (a foreign mapping left?)"

case $result in
    "depmig-guestctl: PASS "*) ;;
    *) rig_fail "appliance: $result" ;;
esac
rig_result PASS "appliance ${result#depmig-guestctl: PASS }; guest ran on (ticker $t1 -> $t2, mmuncher pass $(guest_passes "$G")), guest and shell destroyed cleanly"
