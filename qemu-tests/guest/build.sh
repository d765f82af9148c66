#!/usr/bin/env bash
# Builds the rig's guest: Debian's kernel (the one every guest boots,
# scripts/lib.sh debian_kernel_pkg) and an initramfs with busybox, the
# workloads, the NIC drivers (xen-netfront for the rig, e1000 for the plain
# QEMU test) and this directory's init. Prints two lines: kernel path,
# initramfs path. Cached by a hash of every input.
#
#   qemu-tests/guest/build.sh [--extra SRC=DEST]...
#
# --extra puts file SRC at DEST in the initramfs (e.g. an agent and its BPF
# object); an executable hook at /etc/depmig/rc.d/NAME.sh runs before the
# workloads start.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/scripts/lib.sh"

extras=()
while [ $# -gt 0 ]; do
    case $1 in
        --extra) [[ ${2:-} == /*=/* || ${2:-} == *=/* ]] || die "--extra wants SRC=/DEST"; extras+=("$2"); shift 2 ;;
        *) die "unknown argument $1" ;;
    esac
done

need_pkgs busybox-static cpio gzip file
wl=$("$here/build-workloads.sh")
kpkg=$(debian_kernel_pkg)
[ -n "$kpkg" ] || die "cannot resolve the Debian kernel package"
kver=${kpkg#linux-image-}
modules=(xen-netfront e1000)

key=$( {
    echo "$kpkg" "${modules[*]}"
    cat "$here/build.sh" "$here/init" "$wl"/{mmuncher,ticker,wlhttp} /bin/busybox
    for e in "${extras[@]}"; do echo "$e"; cat "${e%%=*}"; done
} | sha256sum | cut -c1-16)
out="$DEPMIG_CACHE/guest/guest-$key"
if [ -f "$out/initrd.gz" ] && [ -f "$out/vmlinuz" ]; then
    printf '%s\n%s\n' "$out/vmlinuz" "$out/initrd.gz"
    exit 0
fi

log "building the guest ($kpkg)"
mkdir -p "$DEPMIG_CACHE/guest"
work=$(mktemp -d "$DEPMIG_CACHE/guest/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
kdir="$DEPMIG_CACHE/guest/kernel-$kver"
if [ ! -f "$kdir/.done" ]; then
    rm -rf "$kdir"
    extract_deb "$kpkg" "$kdir"
    touch "$kdir/.done"
fi
r="$work/root"
mkdir -p "$r"/{bin,sbin,etc/depmig/rc.d,proc,sys,dev,tmp,run,lib/modules}
cp /bin/busybox "$r/bin/busybox"
ln -s busybox "$r/bin/sh"
cp "$wl"/{mmuncher,ticker,wlhttp} "$r/bin/"
for m in "${modules[@]}"; do
    f=$(find "$kdir/lib/modules/$kver" -name "$m.ko*" | head -n 1)
    [ -n "$f" ] || die "module $m not found in $kpkg"
    case $f in
        *.ko) cp "$f" "$r/lib/modules/" ;;
        *.ko.xz) xz -dc "$f" > "$r/lib/modules/$m.ko" ;;
        *) die "unknown module format $f" ;;
    esac
done
cp "$here/init" "$r/init"
chmod +x "$r/init"
for e in "${extras[@]}"; do
    src=${e%%=*} dest=${e#*=}
    mkdir -p "$r$(dirname "$dest")"
    cp -L "$src" "$r$dest"
done
mkdir -p "$out.tmp"
cp "$kdir/boot/vmlinuz-$kver" "$out.tmp/vmlinuz"
cp "$kdir/boot/config-$kver" "$out.tmp/config"
(cd "$r" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -6 > "$out.tmp/initrd.gz"
rm -rf "$out" && mv "$out.tmp" "$out"
log "guest initramfs $(du -h "$out/initrd.gz" | cut -f1)"
printf '%s\n%s\n' "$out/vmlinuz" "$out/initrd.gz"
