# Helpers for scenario scripts running in the rig's dom0 (installed as
# /rig/lib.sh; scenarios `. /rig/lib.sh`). Everything a scenario reports goes
# to the serial console as tagged lines the host-side runner extracts:
#   DEPMIG-RESULT PASS|FAIL <reason>   the scenario's verdict (exactly one)
#   DEPMIG-JSON <name> <one-line JSON> appended to out/rig/<scenario>/<name>.jsonl
#   DEPMIG-FILE <name> <base64>        chunks of a file, reassembled into
#   DEPMIG-FILE-END <name> <sha256>    out/rig/<scenario>/files/<name>
#   DEPMIG-BLOB <name> <offset MiB> <size> <sha256>
#                                      a file written to the export disk,
#                                      copied to out/rig/<scenario>/files/<name>
#   DEPMIG-LOG <text>                  progress notes (kept in the serial log)

# Which of the rig's hosts this dom0 is: a, or b in a two-host scenario
# (rig.host=b on dom0's command line). Both hosts' xenbr0 are one network,
# joined by the link between the two machines; each dom0 has its own
# address on it, and the other's is RIG_PEER_DOM0_IP.
RIG_HOST=a
for _arg in $(cat /proc/cmdline 2>/dev/null); do
    case $_arg in rig.host=b) RIG_HOST=b ;; esac
done
unset _arg
if [ "$RIG_HOST" = b ]; then
    RIG_DOM0_IP=10.77.0.2 RIG_PEER_DOM0_IP=10.77.0.1 RIG_DOM0_IP2=10.78.0.2
else
    RIG_DOM0_IP=10.77.0.1 RIG_PEER_DOM0_IP=10.77.0.2 RIG_DOM0_IP2=10.78.0.1
fi
RIG_NET_PREFIX=10.77.0
RIG_BRIDGE=xenbr0
# The second network (a guest's second vif): bridge, dom0's address, prefix.
# It stays inside each host.
RIG_BRIDGE2=xenbr1
RIG_NET2_PREFIX=10.78.0
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

# rig_export_disk FILE [NAME]: rig_export for a file too large for the
# console: written raw to the export disk (/dev/vda, a scenario with
# EXPORT_MIB), each file at the next MiB after the last one.
rig_export_disk() {
    local f=$1 name=${2:-$(basename "$1")} off size mib
    case $name in *[!A-Za-z0-9_.-]*|'') rig_say "bad export name '$name'"; return 1 ;; esac
    [ -f "$f" ] || { rig_say "export: no file $f"; return 1; }
    [ -b /dev/vda ] || { rig_say "export: no export disk (/dev/vda); set EXPORT_MIB"; return 1; }
    off=$(cat /tmp/.rig-export-mib 2>/dev/null || echo 0)
    size=$(wc -c < "$f")
    mib=$(( (size + 1048575) / 1048576 ))
    [ $(( off + mib )) -le $(( $(cat /sys/block/vda/size) / 2048 )) ] \
        || { rig_say "export: $f ($size bytes) does not fit the export disk"; return 1; }
    dd if="$f" of=/dev/vda bs=1M seek="$off" conv=notrunc,fsync 2>/dev/null \
        || { rig_say "export: writing $f to /dev/vda failed"; return 1; }
    echo $(( off + mib )) > /tmp/.rig-export-mib
    echo "DEPMIG-BLOB $name $off $size $(sha256sum "$f" | cut -d' ' -f1)"
}

# rig_console_log DOMNAME: path of a domain's console log (xenconsoled --log=guest).
rig_console_log() { echo "$RIG_CONSOLE_DIR/guest-$1.log"; }

# rig_console_text DOMNAME: the domain's console log as complete lines, '\r'
# removed. xenconsoled writes a line as it arrives, so the log's last line may
# be half written: it is held back until its newline is there. Reads one
# snapshot, so a line that completes meanwhile is not seen half.
rig_console_text() {
    local f snap
    f=$(rig_console_log "$1")
    [ -f "$f" ] || return 0
    snap=/tmp/.console-text.$$
    cat "$f" > "$snap" 2>/dev/null || { rm -f "$snap"; return 0; }
    if [ -n "$(tail -c 1 "$snap")" ]; then sed '$d' "$snap"; else cat "$snap"; fi | tr -d '\r'
    rm -f "$snap"
}

# rig_wait_console DOMNAME REGEX SECONDS: wait until the domain's console log
# has a complete line matching REGEX (grep -E); 0 when found, 1 on timeout.
rig_wait_console() {
    local i=0
    while [ "$i" -lt "$3" ]; do
        rig_console_text "$1" | grep -E "$2" > /dev/null && return 0
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
# paging (hap=0: HAP over QEMU's emulated NPT crashed guests in live
# migration, about 4 in 27 on 4.17; shadow paging none in 22), one vif on xenbr0 with a fixed MAC derived
# from IP_SUFFIX (default 10, i.e. 10.77.0.10) so the guest can use a static
# address. The guest's own vif is not rate-limited: only the migration link is.
# RIG_GUEST_VCPUS sets its vCPUs (default 1); RIG_GUEST_VIF2=1 adds a second
# vif on the second bridge, with the MAC of 10.78.0.IP_SUFFIX (rig_mac2).
rig_pvh_guest_cfg() {
    local file=$1 name=$2 kernel=$3 ramdisk=$4 mem=$5 cmdline=$6 ip=${7:-10} vifs
    vifs="\"bridge=$RIG_BRIDGE,mac=$(rig_mac "$ip")\""
    [ -z "${RIG_GUEST_VIF2:-}" ] || vifs="$vifs, \"bridge=$RIG_BRIDGE2,mac=$(rig_mac2 "$ip")\""
    cat > "$file" <<CFG
name = "$name"
type = "pvh"
hap = 0
memory = $mem
maxmem = $mem
vcpus = ${RIG_GUEST_VCPUS:-1}
kernel = "$kernel"
ramdisk = "$ramdisk"
cmdline = "$cmdline"
seclabel = "$RIG_LABEL_GUEST"
vif = [ $vifs ]
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "preserve"
CFG
}

# rig_mac IP_SUFFIX: the MAC address the rig gives the vif of 10.77.0.IP_SUFFIX.
rig_mac() { printf '00:16:3e:77:00:%02x\n' "$1"; }
# rig_mac2 IP_SUFFIX: the MAC address of 10.78.0.IP_SUFFIX on the second bridge.
rig_mac2() { printf '00:16:3e:78:00:%02x\n' "$1"; }

# rig_migration_vif IP_SUFFIX: an xl vif spec for a domain that carries the
# migration stream: on xenbr0 and limited to the scenario's link rate.
rig_migration_vif() {
    echo "bridge=$RIG_BRIDGE,mac=$(rig_mac "$1")${DEPMIG_LINK_RATE:+,rate=$DEPMIG_LINK_RATE}"
}

# rig_appliance NAME MODE MEMORY_MIB [XL_LINE...]: creates the depmig
# appliance image in MODE, paused, labelled as an appliance and kept on
# crash, with a fresh console log (a previous run's result line must not
# count). Each XL_LINE is added to its xl config (e.g. "hap = 0", a vif).
rig_appliance() {
    local name=$1 mode=$2 mem=$3 line
    shift 3
    rm -f "$(rig_console_log "$name")"
    {
        echo "name = \"$name\""
        echo 'type = "pvh"'
        echo 'kernel = "/scenario/depmig-appliance"'
        echo "cmdline = \"$mode\""
        echo "memory = $mem"
        echo 'vcpus = 1'
        echo "seclabel = \"$RIG_LABEL_APPLIANCE\""
        echo 'on_poweroff = "destroy"'
        echo 'on_crash = "preserve"'
        for line in "$@"; do echo "$line"; done
    } > "/tmp/$name.cfg"
    xl create -p "/tmp/$name.cfg" > /tmp/create.out 2>&1 \
        || { cat /tmp/create.out; rig_fail "xl create -p $name: $(tail -n 1 /tmp/create.out)"; }
}

# rig_appliance_config NAME DIR KEY=VALUE...: writes each KEY under DIR in
# the appliance's xenstore home. Only dom0 may write them; the appliance
# may read them.
rig_appliance_config() {
    local name=$1 dir id kv
    id=$(rig_domid "$name") || rig_fail "no domid for $name"
    dir=/local/domain/$id/$2
    shift 2
    for kv in "$@"; do
        xenstore-write "$dir/${kv%%=*}" "${kv#*=}" || rig_fail "writing $dir/${kv%%=*} for $name"
    done
    xenstore-chmod "$dir" n0 "r$id" || rig_fail "xenstore-chmod $dir"
    for kv in "$@"; do
        xenstore-chmod "$dir/${kv%%=*}" n0 "r$id" || rig_fail "xenstore-chmod $dir/${kv%%=*}"
    done
}

# FLASK labels of the depmig policy module (qemu-tests/flask/depmig.te).
RIG_LABEL_GUEST=system_u:system_r:depmig_guest_t
RIG_LABEL_SHELL=system_u:system_r:depmig_guest_t
RIG_LABEL_APPLIANCE=system_u:system_r:depmig_appliance_t
RIG_LABEL_OTHER=system_u:system_r:domU_t

# rig_wait_peer SECONDS: waits until the other host's dom0 answers ping on
# the migration network (a two-host scenario; both machines boot at once,
# and either may be slower). Fails the scenario after SECONDS.
rig_wait_peer() {
    local i=0
    while ! ping -c 1 -W 1 "$RIG_PEER_DOM0_IP" >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -ge "$1" ] && rig_fail "host $RIG_HOST: the other host's dom0 ($RIG_PEER_DOM0_IP) did not answer within $1 s"
        sleep 1
    done
}
