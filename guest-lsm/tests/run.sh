#!/usr/bin/env bash
# Boots the Debian guest kernel in plain QEMU (TCG) with an initramfs holding
# the agent, the BPF object and the test programs, and runs every guest-lsm
# test: the taint suite, the published-frames check from outside (QEMU
# monitor pmemsave), the refusals, and the overhead benchmark. Prints one
# VERDICT line per test and exits non-zero when any fails.
#
#   run.sh [bookworm|trixie]
#
# bookworm (the default) boots Debian 12's 6.1, trixie Debian 13's 6.12.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib.sh"

suite=${1:-bookworm}
need_pkgs qemu-system-x86 busybox-static cpio kmod e2fsprogs xz-utils
built=$("$here/../build.sh" "$suite")
log "guest-lsm host tests"
# Same target, flags and directory as build.sh: the dependencies build once.
(cd "$here/.." && RUSTFLAGS="-C target-feature=+crt-static" \
    cargo test --release --locked --quiet --target x86_64-unknown-linux-gnu \
    --target-dir "$DEPMIG_CACHE/guest-lsm/target" >&2)
eval "$built"

work="$DEPMIG_CACHE/guest-lsm/run"
[ "$suite" = bookworm ] || work="$DEPMIG_CACHE/guest-lsm/run-$suite"
rm -rf "$work" && mkdir -p "$work"
kver=$(basename "$modules")

# Modules for a virtio disk with ext4 (the "persistent storage" of the tests).
kroot=$(dirname "$(dirname "$(dirname "$modules")")")
[ -f "$modules/modules.dep" ] || depmod -b "$kroot" "$kver"
root="$work/root"
mkdir -p "$root"/{bin,depmig,proc,sys,dev,run,mnt,lib/modules}
: > "$root/depmig/modules.list"
for m in crc32c_generic virtio_pci virtio_blk ext4; do
    modprobe -d "$kroot" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
done | awk '!seen[$0]++' | while read -r ko; do
    # busybox insmod loads plain objects; trixie's are xz-compressed.
    name=$(basename "$ko" .xz)
    case $ko in
        *.xz) xz -dc "$ko" > "$root/lib/modules/$name" ;;
        *) cp "$ko" "$root/lib/modules/$name" ;;
    esac
    echo "/lib/modules/$name" >> "$root/depmig/modules.list"
done
cp /bin/busybox "$root/bin/busybox"
cp "$here/init.sh" "$root/init"
cp "$bpf" "$agent" "$test" "$root/depmig/"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initramfs.gz"
truncate -s 32M "$work/persist.img"
mkfs.ext4 -q -F "$work/persist.img"

ram_mb=256
# boot NAME TIMEOUT CMDLINE: boots once, serial to $work/NAME.log.
boot() {
    local name=$1 secs=$2 cmdline=$3
    timeout --kill-after=10 "$secs" qemu-system-x86_64 -M pc -cpu qemu64 -smp 1 -m "$ram_mb" \
        -accel tcg -display none -no-reboot \
        -kernel "$kernel" -initrd "$work/initramfs.gz" -append "$cmdline" \
        -drive "file=$work/persist.img,if=virtio,format=raw" \
        -serial "file:$work/$name.log" \
        -monitor "unix:$work/$name.mon,server=on,wait=off" || true
}

log "boot 1: taint suite (log $work/suite.log)"
"$test" host-dump --serial "$work/suite.log" --monitor "$work/suite.mon" \
    --ram-mb "$ram_mb" --dump "$work/mem.dump" --timeout 420 > "$work/host-dump.out" &
dumper=$!
boot suite 420 "console=ttyS0 loglevel=4 panic=-1 rdinit=/init depmig_mode=suite"
wait $dumper || true
rm -f "$work/mem.dump"

log "boot 2: without bpf in lsm= (log $work/nolsm.log)"
boot nolsm 180 "console=ttyS0 loglevel=4 panic=-1 rdinit=/init depmig_mode=nolsm lsm=landlock,lockdown,yama,apparmor"

results=$(cat "$work/suite.log" "$work/host-dump.out" "$work/nolsm.log" | tr -d '\r' | grep -a '^VERDICT ' || true)
echo "$results"
grep -a -E '^(BENCH|depmig-lsm: profile)' "$work/suite.log" | tr -d '\r' || true
expected="compute-only-untainted tcp-connect-taints child-of-tainted-tainted child-of-untainted-own-group
ab-pipe-then-a-net ab-pipe-then-b-net ab-a-net-then-pipe ab-pipe-only-untainted signal-merges
signal-from-tainted-taints persistent-write-taints tmpfs-write-untainted unix-socket-merges
group-ids-recycled
freeze-untainted interaction-thaws-and-taints thaw-request published-frames-hold-table
profile-walks-task-list profile-finds-free-pages
refuse-without-xenstore refuse-without-btf refuse-without-bpf-lsm"
pass=0 fail=0
for t in $expected; do
    # (a here-string: with pipefail, grep -q closing a pipe early would fail)
    if grep -q "^VERDICT $t PASS" <<< "$results"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "missing or failed: $t"
    fi
done
grep -a -q '^BENCH-RATIO .*pipe_roundtrip=' "$work/suite.log" || { fail=$((fail + 1)); echo "missing: benchmark ratio"; }
echo "guest-lsm: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
