#!/bin/sh
# xen417-foreign-teardown: characterises the Xen 4.17 behaviour that makes the
# appliance unmap before it stops. A stand-in appliance (Linux PVH domU,
# depmig_appliance_t) maps two frames of a guest and is destroyed with the
# mapping in place; 4.17's p2m teardown drops no references of foreign
# entries, so the guest, once destroyed, cannot be freed and stays behind as
# a dying "(null)" domain. (flask-least-privilege is the control: a mapper
# that unmapped leaves nothing.) PASS means the rig's Xen behaves as
# documented; if a Xen ever releases such mappings this fails, and the rule
# can be revisited.
. /rig/lib.sh

cat > /tmp/guest.cfg <<CFG
name = "td-guest"
type = "pvh"
kernel = "/scenario/vmlinuz"
memory = 128
seclabel = "$RIG_LABEL_GUEST"
CFG
xl create -p /tmp/guest.cfg >/tmp/c1 2>&1 || { cat /tmp/c1; rig_fail "cannot create the guest"; }
g=$(rig_domid td-guest)
cat > /tmp/probe.cfg <<CFG
name = "td-probe"
type = "pvh"
kernel = "/scenario/vmlinuz"
ramdisk = "/scenario/probe.initrd"
cmdline = "console=hvc0 loglevel=4 rig.domu=xen417-foreign-teardown.probe probe.guest=$g"
memory = 256
seclabel = "$RIG_LABEL_APPLIANCE"
on_poweroff = "destroy"
CFG
xl create /tmp/probe.cfg >/tmp/c2 2>&1 || { cat /tmp/c2; rig_fail "cannot create the probe"; }
rig_wait_console td-probe '^PROBE-(HOLDING|FAILED)' 600 || rig_fail "the probe did not report"
tr -d '\r' < "$(rig_console_log td-probe)" | grep '^PROBE' | sed 's/^/DEPMIG-LOG /'
rig_wait_console td-probe '^PROBE-HOLDING' 1 || rig_fail "the probe could not map the guest"

xl destroy td-probe || rig_fail "xl destroy of the probe failed"
rig_wait_gone td-probe 60 || rig_fail "the probe itself did not go away"
xl destroy td-guest || rig_fail "xl destroy of the guest failed"
if rig_wait_gone td-guest 60; then
    rig_fail "the guest went away although a destroyed mapper held its frames: this Xen releases foreign mappings at teardown"
fi
xl list > /tmp/list 2>&1; cat /tmp/list
zombie=$(awk '$1 == "(null)" { print $2 " " $3 }' /tmp/list)
rig_json teardown "{\"guest_domid\":$g,\"left_after_destroy\":\"$zombie\"}"
rig_result PASS "guest d$g stays behind as a dying domain (xl list: (null) $zombie) after its mapper was destroyed holding 2 frames: the appliance must unmap before it stops"
