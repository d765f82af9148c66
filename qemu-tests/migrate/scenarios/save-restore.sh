#!/bin/sh
# save-restore: `depmig save` writes a running guest like migrate-smoke's
# (256 MiB; ticker, mmuncher over 16 MiB) to a file in dom0 through a source
# appliance whose peer is dom0 itself, and `depmig restore` starts it again
# from that file through a destination appliance.
# Verdicts, each can fail:
#  1. the save commits: FILE exists (no partial file), the guest and the
#     appliance are gone;
#  2. Xen's own verify-stream-v2 (xen-utils) accepts FILE as an xl save
#     file (xl header, libxl stream, libxc stream v2);
#  3. the restore runs the guest under its name, nothing else is left,
#     mmuncher verifies two more passes with no corrupt page and the ticker
#     goes on from where it was saved.
# Not in the default run.
. /rig/lib.sh
. /scenario/rig-guest.sh
. /scenario/baseline.sh
. /scenario/migrate.sh
G=guest
F=/tmp/$G.save
# 256 MiB: the file lives in dom0's memory (its root file system) beside
# what verify-stream-v2 needs.
guest_start $G ticker,mmuncher 256 depmig.mib=16 || { cat /tmp/$G.create.log; rig_fail "xl create failed: $(tail -n 1 /tmp/$G.create.log)"; }
guest_wait_passes $G 2 400 || { guest_dump $G; rig_fail "mmuncher did not verify 2 passes before the save"; }
src=$(rig_domid $G)
ticks=$(guest_ticks $G)

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

# 2. Xen's verifier, from the rig's own xen-utils.
vs=$(ls /usr/lib/xen-*/bin/verify-stream-v2 2>/dev/null | head -n 1)
[ -n "$vs" ] || rig_fail "no verify-stream-v2 in dom0's xen-utils"
command -v python3 >/dev/null || rig_fail "dom0 has no python3 for verify-stream-v2: the rig's dom0 does not carry python yet"
PYTHONPATH=${vs%/bin/verify-stream-v2}/lib/python python3 -S "$vs" --format xl -i $F > /tmp/$G.verify.log 2>&1
rc=$?
sed "s/^/VERIFY-STREAM-V2| /" /tmp/$G.verify.log
[ "$rc" = 0 ] || rig_fail "Xen's verify-stream-v2 refused $F (status $rc): $(tail -n 1 /tmp/$G.verify.log)"
rig_say "verify-stream-v2 --format xl accepted $F ($size bytes)"

# 3. Restore, and the workloads.
t0=$(cut -d' ' -f1 /proc/uptime)
"$DEPMIG" restore $F --appliance "$DEPMIG_IMAGE" > /tmp/$G.restore.log 2>&1
rc=$?
restore_s=$(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }')
sed "s/^/DEPMIG-LOG restore| /" /tmp/$G.restore.log
[ "$rc" = 0 ] || { xl list; rig_fail "depmig restore failed (status $rc): $(tail -n 1 /tmp/$G.restore.log)"; }
depmig_check_moved $G "$src" "$ticks"
rig_result PASS "saved $G in ${save_s}s ($size bytes, verify-stream-v2 accepted it), restored in ${restore_s}s; mmuncher verified to pass $(guest_passes $G), ticker past $ticks"
