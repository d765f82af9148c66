#!/bin/sh
# save-restore: `depmig save` writes a running guest like migrate-smoke's
# (256 MiB; ticker, mmuncher over 16 MiB) to a file in dom0 through a source
# appliance whose peer is dom0 itself, and `depmig restore` starts it again
# from that file through a destination appliance; then stock `xl restore`
# is given the same file.
# Verdicts, each can fail:
#  1. the save commits: FILE exists (no partial file), the guest and the
#     appliance are gone;
#  2. FILE reaches the host whole (the export disk, checked by its sha256),
#     where save-restore.check runs Xen's own verify-stream-v2 (from the
#     rig's xen-utils) on it as an xl save file (xl header, libxl stream,
#     libxc stream v2): dom0 carries no python;
#  3. the restore runs the guest under its name, nothing else is left,
#     mmuncher verifies two more passes with no corrupt page and the ticker
#     goes on from where it was saved;
#  4. if stock `xl restore FILE` runs the guest, its workloads verify as in
#     3 (xl refusing the file is reported, not failed: depmig's file is
#     meant for depmig restore first).
# Not in the default run.
. /rig/lib.sh
. /scenario/rig-guest.sh
. /scenario/baseline.sh
. /scenario/migrate.sh
G=guest
F=/tmp/$G.save
# 256 MiB: the file lives in dom0's memory (its root file system).
guest_start $G ticker,mmuncher 256 depmig.mib=16 || { cat /tmp/$G.create.log; rig_fail "xl create failed: $(tail -n 1 /tmp/$G.create.log)"; }
guest_wait_passes $G 2 400 || { guest_dump $G; rig_fail "mmuncher did not verify 2 passes before the save"; }
src=$(rig_domid $G)
ticks=$(guest_ticks $G)
saved=$(guest_passes $G)

# 1. Save.
rig_say "depmig: saving $G (domid $src, mmuncher at pass $(guest_passes $G), ticker at $ticks) to $F"
t0=$(cut -d' ' -f1 /proc/uptime)
"$DEPMIG" save $G $F --config /tmp/$G.cfg --appliance "$DEPMIG_IMAGE" \
    --dom0-ip "$RIG_DOM0_IP" > /tmp/$G.save.log 2>&1
rc=$?
save_s=$(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }')
sed "s/^/DEPMIG-LOG save| /" /tmp/$G.save.log
[ "$rc" = 0 ] || { guest_dump $G; xl list; rig_fail "depmig save failed (status $rc): $(tail -n 1 /tmp/$G.save.log)"; }
[ -f $F ] || rig_fail "depmig save passed but wrote no $F"
[ -e $F.depmig-partial ] && rig_fail "the partial file $F.depmig-partial is left"
left=$(rig_domains | tr '\n' ' ')
[ -z "${left% }" ] || rig_fail "domains left after the save: $left"
size=$(wc -c < $F)

# 2. Off to the host, where Xen's verifier runs (save-restore.check).
rig_export_disk $F $G.save || rig_fail "could not export $F to the host"
rig_say "exported $F ($size bytes) for verify-stream-v2 on the host"

# 3. Restore, and the workloads.
t0=$(cut -d' ' -f1 /proc/uptime)
"$DEPMIG" restore $F --appliance "$DEPMIG_IMAGE" > /tmp/$G.restore.log 2>&1
rc=$?
restore_s=$(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }')
sed "s/^/DEPMIG-LOG restore| /" /tmp/$G.restore.log
[ "$rc" = 0 ] || { xl list; rig_fail "depmig restore failed (status $rc): $(tail -n 1 /tmp/$G.restore.log)"; }
depmig_check_moved $G "$src" "$ticks"
restored=$(guest_passes $G)

# 4. Stock xl restore of the same file, the copy above gone first: the
# same saved state starts once more. Its console log starts afresh.
rst=$(rig_domid $G)
xl destroy $G
rig_wait_gone $G 60 || rig_fail "the restored guest (domid $rst) would not go before xl restore"
for f in $(guest_logs $G); do mv "$f" "${f%.log}.before-xl-restore.log"; done
t0=$(cut -d' ' -f1 /proc/uptime)
xl restore $F > /tmp/$G.xl-restore.log 2>&1
rc=$?
xl_s=$(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }')
sed "s/^/DEPMIG-LOG xl-restore| /" /tmp/$G.xl-restore.log
if [ "$rc" = 0 ] && [ -n "$(rig_domid $G)" ]; then
    guest_wait_passes $G $((saved + 2)) 400 || { guest_dump $G; rig_fail "stock xl restore ran $G but mmuncher did not verify 2 passes past the saved $saved"; }
    guest_corrupt $G && rig_fail "after stock xl restore, mmuncher: $(guest_grep $G 'CORRUPT' | head -n 1)"
    [ "$(guest_ticks $G)" -gt "$ticks" ] || rig_fail "after stock xl restore the ticker did not go on past $ticks"
    xl_restore="stock xl restore ran it too in ${xl_s}s (mmuncher to pass $(guest_passes $G), ticker past $ticks)"
else
    left=$(rig_domains | tr '\n' ' ')
    [ -z "${left% }" ] || rig_fail "stock xl restore failed (status $rc) and left domains: $left"
    xl_restore="stock xl restore refused it (status $rc: $(tail -n 1 /tmp/$G.xl-restore.log))"
fi
rig_result PASS "saved $G in ${save_s}s ($size bytes, exported for verify-stream-v2), depmig restore in ${restore_s}s verified to pass $restored, ticker past $ticks; $xl_restore"
