#!/bin/sh
# dom0-boot: Xen with FLASK enforcing and the depmig policy boots dom0, whose
# toolstack works: xl getenforce says Enforcing, xl list answers, dom0 carries
# its FLASK label and the depmig types are known to the loaded policy.
. /rig/lib.sh

enf=$(xl getenforce 2>&1)
rig_say "xl getenforce: $enf"
[ "$enf" = Enforcing ] || rig_fail "xl getenforce said '$enf', not Enforcing"

xl list -Z > /tmp/list 2>&1 || { cat /tmp/list; rig_fail "xl list failed"; }
cat /tmp/list
label=$(awk '$1 == "Domain-0" { print $NF }' /tmp/list)
rig_say "dom0 label: $label"
[ "$label" = system_u:system_r:dom0_t ] || rig_fail "dom0 label is '$label'"

# The loaded policy is the rig's: a domain labelled with each depmig type can
# be created (paused; Debian's kernel, which has a PVH entry, as its kernel)
# and carries the label; a type no policy has is refused (the control that
# shows the check can fail). Nothing is left afterwards.
for t in depmig_guest_t depmig_appliance_t depmig_no_such_t; do
    cat > /tmp/probe.cfg <<CFG
name = "probe"
type = "pvh"
kernel = "/scenario/vmlinuz"
memory = 256
seclabel = "system_u:system_r:$t"
CFG
    if xl create -p /tmp/probe.cfg >/tmp/probe.out 2>&1; then
        got=$(xl list -Z probe 2>/dev/null | awk '$1 == "probe" { print $NF }')
        rig_say "created a domain labelled $t: label '$got'"
        xl destroy probe || rig_fail "xl destroy of the $t probe failed"
        [ "$t" != depmig_no_such_t ] || rig_fail "a domain with an unknown type was created"
        [ "$got" = "system_u:system_r:$t" ] || rig_fail "probe domain has label '$got', wanted $t"
    else
        rig_say "creating a domain labelled $t failed: $(tail -n 1 /tmp/probe.out)"
        [ "$t" = depmig_no_such_t ] || { cat /tmp/probe.out; rig_fail "could not create a $t domain"; }
    fi
    rig_wait_gone probe 30 || rig_fail "the $t probe domain is still there after destroy"
done

xl info > /tmp/info
xen=$(awk -F': ' '/^xen_version/ { print $2 }' /tmp/info)
cmd=$(awk -F': ' '/^xen_commandline/ { print $2 }' /tmp/info)
case $cmd in *flask=enforcing*) ;; *) rig_fail "Xen command line lacks flask=enforcing: $cmd" ;; esac
rig_json boot "{\"xen_version\":\"$xen\",\"enforce\":\"$enf\",\"dom0_label\":\"$label\",\"dom0_uptime_s\":$(cut -d' ' -f1 /proc/uptime)}"
rig_result PASS "FLASK $enf, dom0 $label, Xen $xen"
