# Helpers for scenario scripts running in the rig's dom0 (installed as
# /rig/lib.sh; scenarios `. /rig/lib.sh`). Everything a scenario reports goes
# to the serial console as tagged lines the host-side runner extracts:
#   DEPMIG-RESULT PASS|FAIL <reason>   the scenario's verdict (exactly one)
#   DEPMIG-JSON <name> <one-line JSON> appended to out/rig/<scenario>/<name>.jsonl
#   DEPMIG-FILE <name> <base64>        chunks of a file, reassembled into
#   DEPMIG-FILE-END <name> <sha256>    out/rig/<scenario>/files/<name>
#   DEPMIG-LOG <text>                  progress notes (kept in the serial log)

RIG_DOM0_IP=10.77.0.1
RIG_NET_PREFIX=10.77.0
RIG_BRIDGE=xenbr0
RIG_CONSOLE_DIR=/var/log/xen/console
export PATH=/rig/bin:$PATH

# rig_say TEXT: a progress line on the console.
rig_say() { echo "DEPMIG-LOG $*"; }

# rig_result PASS|FAIL REASON...: the scenario's verdict; call it once.
rig_result() {
    local v=$1; shift
    echo "DEPMIG-RESULT $v $*"
}

# rig_fail REASON...: report FAIL and stop the scenario.
rig_fail() { rig_result FAIL "$@"; exit 1; }

# rig_json NAME JSON: one machine-readable record (one line, no newline inside).
rig_json() {
    case $1 in *[!A-Za-z0-9_.-]*|'') rig_say "bad json name '$1'"; return 1 ;; esac
    printf 'DEPMIG-JSON %s %s\n' "$1" "$(printf '%s' "$2" | tr -d '\n')"
}

# rig_export FILE [NAME]: copy a file from dom0 to out/rig/<scenario>/files/NAME.
rig_export() {
    local f=$1 name=${2:-$(basename "$1")}
    case $name in *[!A-Za-z0-9_.-]*|'') rig_say "bad export name '$name'"; return 1 ;; esac
    [ -f "$f" ] || { rig_say "export: no file $f"; return 1; }
    base64 -w 76 "$f" | while IFS= read -r l; do echo "DEPMIG-FILE $name $l"; done
    echo "DEPMIG-FILE-END $name $(sha256sum "$f" | cut -d' ' -f1)"
}

# rig_console_log DOMNAME: path of a domain's console log (xenconsoled --log=guest).
rig_console_log() { echo "$RIG_CONSOLE_DIR/guest-$1.log"; }

# rig_wait_console DOMNAME REGEX SECONDS: wait until the domain's console log
# has a line matching REGEX (grep -E); 0 when found, 1 on timeout.
rig_wait_console() {
    local f i=0
    f=$(rig_console_log "$1")
    while [ "$i" -lt "$3" ]; do
        grep -Eq "$2" "$f" 2>/dev/null && return 0
        sleep 1; i=$((i + 1))
    done
    return 1
}

# rig_domid NAME: the domain id of a running domain, empty if none.
rig_domid() { xl domid "$1" 2>/dev/null; }

# rig_domains: names of all domains but dom0, one per line.
rig_domains() { xl list 2>/dev/null | awk 'NR > 1 && $2 != 0 { print $1 }'; }

# rig_wait_gone NAME SECONDS: wait until no domain NAME exists, also no dying
# zombie left from it (xl list shows those as "(null)"); 0 when gone.
rig_wait_gone() {
    local i=0
    while [ "$i" -lt "$2" ]; do
        if ! xl list 2>/dev/null | awk 'NR > 1 { print $1 }' | grep -qx -e "$1" -e '(null)'; then
            return 0
        fi
        sleep 1; i=$((i + 1))
    done
    return 1
}

# rig_pvh_guest_cfg FILE NAME KERNEL RAMDISK MEMORY_MIB CMDLINE [IP_SUFFIX]:
# write an xl config for a PVH Linux domU labelled as a depmig guest: shadow
# paging (hap=0, see RIG-NOTES), one vif on xenbr0 with a fixed MAC derived
# from IP_SUFFIX (default 10, i.e. 10.77.0.10) so the guest can use a static
# address. The guest's own vif is not rate-limited: only the migration link is.
rig_pvh_guest_cfg() {
    local file=$1 name=$2 kernel=$3 ramdisk=$4 mem=$5 cmdline=$6 ip=${7:-10}
    cat > "$file" <<CFG
name = "$name"
type = "pvh"
hap = 0
memory = $mem
maxmem = $mem
vcpus = 1
kernel = "$kernel"
ramdisk = "$ramdisk"
cmdline = "$cmdline"
seclabel = "$RIG_LABEL_GUEST"
vif = [ "bridge=$RIG_BRIDGE,mac=$(rig_mac "$ip")" ]
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "preserve"
CFG
}

# rig_mac IP_SUFFIX: the MAC address the rig gives the vif of 10.77.0.IP_SUFFIX.
rig_mac() { printf '00:16:3e:77:00:%02x\n' "$1"; }

# rig_migration_vif IP_SUFFIX: an xl vif spec for a domain that carries the
# migration stream: on xenbr0 and limited to the scenario's link rate.
rig_migration_vif() {
    echo "bridge=$RIG_BRIDGE,mac=$(rig_mac "$1")${DEPMIG_LINK_RATE:+,rate=$DEPMIG_LINK_RATE}"
}

# FLASK labels of the depmig policy module (qemu-tests/flask/depmig.te).
RIG_LABEL_GUEST=system_u:system_r:depmig_guest_t
RIG_LABEL_SHELL=system_u:system_r:depmig_guest_t
RIG_LABEL_APPLIANCE=system_u:system_r:depmig_appliance_t
RIG_LABEL_OTHER=system_u:system_r:domU_t
