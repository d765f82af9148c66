#!/bin/sh
# migrate-faults: depmig migrations that must fail, each on the same running
# guest (ticker, mmuncher over 16 MiB, 192 MiB): the destination armed with
# the wrong key (refused at the handshake by its key confirmation, before a
# page moves); a byte of page data corrupted on the wire after the guest
# was suspended (only the transcript tag at the end can catch it); the
# destination appliance destroyed mid-stream. Each must
# end with the CLI's "not migrated" status (1), the guest running at the
# source under its name and domid (resumed if it was suspended), the shell
# and every appliance gone, mmuncher verifying with no corrupt page and the
# ticker going on; at no time may a second copy of the guest run.
. /rig/lib.sh
. /scenario/rig-guest.sh
. /scenario/baseline.sh
. /scenario/migrate.sh
G=guest
guest_start $G ticker,mmuncher 192 depmig.mib=16 || { cat /tmp/$G.create.log; rig_fail "xl create failed: $(tail -n 1 /tmp/$G.create.log)"; }
guest_wait_passes $G 2 400 || { guest_dump $G; rig_fail "mmuncher did not verify 2 passes before the migrations"; }
src=$(rig_domid $G)
results=

# expect_refused CASE GREP: the last migration must have exited 1 and its
# log must hold a line matching GREP (the reason); then the guest must have
# stayed.
expect_refused() {
    local rc=$1 case=$2 pattern=$3 why
    [ "$rc" = 1 ] || { xl list; rig_fail "$case: depmig migrate exited $rc, want 1 (not migrated): $(tail -n 1 /tmp/$G.depmig.log)"; }
    why=$(grep -E "$pattern" /tmp/$G.depmig.log | head -n 1)
    [ -n "$why" ] || rig_fail "$case: no line matching '$pattern' in the CLI's log"
    depmig_check_stayed $G "$src" "$ticks"
    rig_say "$case: refused as expected: $why"
    results="$results $case:${MIGRATE_SECONDS}s"
}

# 1. The wrong key: the source finds it in the destination's key
# confirmation and stops before log-dirty, pages or suspension.
ticks=$(guest_ticks $G)
rig_say "fault wrong-key: migrating $G (domid $src)"
depmig_migrate $G /tmp/f1.json /tmp/f1.svg --fault wrong-key --timeout 1200
expect_refused $? wrong-key 'source result: FAIL.*KeyMismatch.*guest never suspended'

# 2. A byte of page data flipped on the wire after the guest was suspended:
# the destination must refuse at the tag, and the source resume the guest.
ticks=$(guest_ticks $G)
rig_say "fault corrupt-final: migrating $G (domid $src)"
depmig_migrate $G /tmp/f2.json /tmp/f2.svg --fault corrupt-final --timeout 1200
expect_refused $? corrupt-final 'source result: FAIL.*guest resumed'

# 3. The destination appliance destroyed while pages stream: the source must
# fail, the guest keep running, the shell be destroyed for good.
ticks=$(guest_ticks $G)
rig_say "fault destination-destroyed: migrating $G (domid $src)"
(
    i=0
    while [ "$i" -lt 600 ]; do
        d=$(rig_domid "$G--depmig-dst")
        if [ -n "$d" ] && xenstore-read "/local/domain/$d/depmig/migrate/state" 2>/dev/null | grep -qx receiving; then
            sleep 20
            rig_say "destroying the destination appliance (domain $d) mid-stream"
            xl destroy "$d"
            exit 0
        fi
        sleep 1; i=$((i + 1))
    done
) &
killer=$!
depmig_migrate $G /tmp/f3.json /tmp/f3.svg --timeout 1200
rc=$?
wait $killer
expect_refused $rc destination-destroyed 'source result: FAIL.*guest (never suspended|resumed|was not suspended)'

rig_result PASS "refused and rolled back:$results; guest $G still domain $src, mmuncher verified to pass $(guest_passes $G)"
