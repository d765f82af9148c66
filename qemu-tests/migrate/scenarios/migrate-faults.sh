#!/bin/sh
# migrate-faults: depmig migrations that must fail, each on the same running
# guest (ticker, mmuncher over 16 MiB, 192 MiB): the destination armed with
# the wrong key (refused at the handshake by its key confirmation, before a
# page moves); a byte of page data corrupted on the wire after the guest
# was suspended (only the transcript tag at the end can catch it); a page of
# the shell changed after it was written (only --verify's page comparison
# can catch it); the destination appliance destroyed mid-stream. Each must
# end with the CLI's "not migrated" status (1), the guest running at the
# source under its name and domid (resumed if it was suspended), the shell
# and every appliance gone, mmuncher verifying with no corrupt page and the
# ticker going on; at no time may a second copy of the guest run. A case
# whose attempt died of the rig (an appliance's triple fault under emulated
# nested paging) before its refusal is tried once more
# (depmig_migrate_retrying_unless).
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
    [ -n "$why" ] || {
        # Evidence for a failure other than the one injected: the CLI's
        # whole log, the host's free memory and Xen's last words.
        sed "s/^/DEPMIG-LOG $case| /" /tmp/$G.depmig.log
        xl info 2>/dev/null | grep -E '^(free_memory|total_memory)' | sed "s/^/DEPMIG-LOG $case| /"
        xl list 2>&1 | sed "s/^/DEPMIG-LOG $case| /"
        xl dmesg 2>/dev/null | tail -n 40 | sed "s/^/DEPMIG-LOG $case| /"
        rig_fail "$case: no line matching '$pattern' in the CLI's log: $(tail -n 1 /tmp/$G.depmig.log)"
    }
    depmig_check_stayed $G "$src" "$ticks"
    rig_say "$case: refused as expected: $why"
    results="$results $case:${MIGRATE_SECONDS}s"
}

# 1. The wrong key: the source finds it in the destination's key
# confirmation and stops before log-dirty, pages or suspension.
ticks=$(guest_ticks $G)
rig_say "fault wrong-key: migrating $G (domid $src)"
P='source result: FAIL.*KeyMismatch.*guest never suspended'
depmig_migrate_retrying_unless "$P" $G /tmp/f1.json /tmp/f1.svg --fault wrong-key --timeout 1200
expect_refused $? wrong-key "$P"

# 2. A byte of page data flipped on the wire after the guest was suspended:
# the destination must refuse at the tag, and the source resume the guest.
# Pages go as Xen's PAGE_DATA here (no LZ4, no deltas), where nothing but
# the tag can tell a flipped byte: in an LZ4 block or a delta the decoder
# may refuse it first, and the copy round's sends may all be shorter than
# the fault's 8 KiB.
ticks=$(guest_ticks $G)
rig_say "fault corrupt-final: migrating $G (domid $src)"
P='source result: FAIL Nak\(Auth\); guest resumed'
depmig_migrate_retrying_unless "$P" $G /tmp/f2.json /tmp/f2.svg --fault corrupt-final --compress none --delta-cache 0 --timeout 1200
expect_refused $? corrupt-final "$P"
# NAK "AUT" also covers a short or unterminated trailer: the destination
# must name the transcript tag (it prints why before it sends the NAK, so the
# line is out before dom0 destroys it).
dres=$(rig_console_text "$G--depmig-dst" | grep -a '^depmig-migrate: refusing the stream: ' | tail -n 1)
[ "$dres" = "depmig-migrate: refusing the stream: Stream(Handshake(BadTag))" ] \
    || rig_fail "corrupt-final: the destination said '$dres', want its refusal at the transcript tag (Stream(Handshake(BadTag)))"
rig_say "corrupt-final: the destination refused at the tag: $dres"

# 3. One page of the shell changed after the stream was applied (the fault
# corrupt-page flips a bit at the destination): the page comparison must
# find it, the destination refuse with NAK VER naming the frame, and the
# source resume the guest.
ticks=$(guest_ticks $G)
rig_say "fault corrupt-page: migrating $G (domid $src)"
P='source result: FAIL Nak\(Verify\); guest resumed'
depmig_migrate_retrying_unless "$P" $G /tmp/f4.json /tmp/f4.svg --verify --fault corrupt-page --timeout 1200
expect_refused $? corrupt-page "$P"
grep -a 'depmig: page verification: mismatch;' /tmp/$G.depmig.log > /dev/null \
    || rig_fail "corrupt-page: the CLI did not report a page verification mismatch: $(grep -a 'page verification' /tmp/$G.depmig.log | tail -n 1)"
listed=$(tr -d '\n' < /tmp/f4.json | grep -o '"mismatched_frames_listed":\[[0-9,]*\]' | head -n 1)
changed=$(rig_console_text "$G--depmig-dst" | grep -a '^depmig-migrate: test fault corrupt-page: changed frame ' | tail -n 1 | sed 's/.*changed frame \(0x[0-9a-f]*\).*/\1/')
[ -n "$changed" ] || rig_fail "corrupt-page: the destination did not say which frame it changed"
case ",$(echo "$listed" | sed 's/.*\[//; s/\]//')," in
    *",$(printf '%d' "$changed"),"*) ;;
    *) rig_fail "corrupt-page: the destination changed frame $changed, the report lists '$listed'" ;;
esac
rig_say "corrupt-page: the destination changed frame $changed and the report names it: $listed"
# 4. The destination appliance destroyed while pages stream: the source must
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
