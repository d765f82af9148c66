#!/usr/bin/env bash
# Builds guest-lsm for a guest kernel: unpacks Debian's kernel, generates
# vmlinux.h from its BTF, compiles the BPF object and the static agent and
# test binaries, and prints where they are (one "name=path" line each).
#
#   build.sh [bookworm|trixie]
#
# bookworm (the default) is the kernel of dom0, the rig's guest and the
# plain-QEMU tests (Debian 12's 6.1); trixie is Debian 13's 6.12, from
# trixie's binaries (scripts/lib.sh, fetch_deb_trixie). The agent and test
# binaries serve both; the BPF object is compiled per kernel, against that
# kernel's own vmlinux.h.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../scripts/lib.sh"

suite=${1:-bookworm}
need_pkgs clang llvm bpftool libbpf-dev xz-utils zstd

case $suite in
    bookworm)
        kpkg=$(debian_kernel_pkg)
        ;;
    trixie)
        trixie_update_once
        kpkg=$(trixie_apt apt-cache depends linux-image-amd64 2>/dev/null \
            | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
        ;;
    *) die "usage: build.sh [bookworm|trixie]" ;;
esac
[ -n "$kpkg" ] || die "cannot resolve the Debian $suite kernel package"
kver=${kpkg#linux-image-}
kdir="$DEPMIG_CACHE/guest-lsm/kernel-$kpkg"
out="$DEPMIG_CACHE/guest-lsm/out"
# bookworm's object keeps its old place; another kernel's sits apart.
bpf_dir=$out
[ "$suite" = bookworm ] || bpf_dir="$out/$kver"
mkdir -p "$out" "$bpf_dir"

if [ ! -f "$kdir/boot/vmlinuz-$kver" ]; then
    log "unpacking $kpkg"
    if [ "$suite" = trixie ]; then
        rm -rf "$kdir.tmp" && mkdir -p "$kdir.tmp" \
            && dpkg-deb -x "$(fetch_deb_trixie "$kpkg")" "$kdir.tmp" && mv "$kdir.tmp" "$kdir"
    else
        rm -rf "$kdir.tmp" && extract_deb "$kpkg" "$kdir.tmp" && mv "$kdir.tmp" "$kdir"
    fi
fi

# vmlinux.h from the kernel's own BTF. The bzImage's setup header says
# where its compressed payload lies (setup_sects at 0x1f1, payload_offset
# and payload_length at 0x248 and 0x24c, from the sector after the setup
# code); the payload ends with the 4-byte uncompressed size the kernel's
# build appends. Debian compresses 6.1 with xz, 6.12 with zstd.
gen="$DEPMIG_CACHE/guest-lsm/gen-$kver"
if [ ! -s "$gen/vmlinux.h" ]; then
    log "generating vmlinux.h for $kver"
    mkdir -p "$gen"
    vmlinuz="$kdir/boot/vmlinuz-$kver"
    hdr() { od -An -t "u$2" -j "$1" -N "$2" "$vmlinuz" | tr -d ' '; }
    setup=$(hdr $((0x1f1)) 1) poff=$(hdr $((0x248)) 4) plen=$(hdr $((0x24c)) 4)
    [ -n "$plen" ] && [ "$plen" -gt 4 ] || die "vmlinuz-$kver has no payload in its setup header"
    dd if="$vmlinuz" of="$gen/payload" iflag=skip_bytes,count_bytes bs=1M status=none \
        skip=$(((setup + 1) * 512 + poff)) count=$((plen - 4))
    if grep -q '^CONFIG_KERNEL_XZ=y' "$kdir/boot/config-$kver"; then
        xz -dc --single-stream "$gen/payload" > "$gen/vmlinux"
    elif grep -q '^CONFIG_KERNEL_ZSTD=y' "$kdir/boot/config-$kver"; then
        zstd -q -dc "$gen/payload" > "$gen/vmlinux"
    else
        die "kernel $kver is neither xz- nor zstd-compressed; teach build.sh its format"
    fi || die "cannot decompress vmlinuz-$kver"
    rm -f "$gen/payload"
    bpftool btf dump file "$gen/vmlinux" format c > "$gen/vmlinux.h.tmp" \
        || die "no BTF in the guest kernel"
    mv "$gen/vmlinux.h.tmp" "$gen/vmlinux.h"
    rm -f "$gen/vmlinux"
fi

log "compiling the BPF object for $kver"
clang -O2 -g -target bpf -mcpu=v3 -D__TARGET_ARCH_x86 -Wall -Werror \
    -I "$gen" -I "$here/bpf" \
    -c "$here/bpf/depmig_lsm.bpf.c" -o "$bpf_dir/depmig_lsm.bpf.o.tmp"
mv "$bpf_dir/depmig_lsm.bpf.o.tmp" "$bpf_dir/depmig_lsm.bpf.o"

log "building the static agent and test binaries"
# An explicit --target keeps crt-static away from build scripts and macros.
(cd "$here" && RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target x86_64-unknown-linux-gnu \
    --target-dir "$DEPMIG_CACHE/guest-lsm/target" --bins >&2)
bin="$DEPMIG_CACHE/guest-lsm/target/x86_64-unknown-linux-gnu/release"
for b in depmig-lsm-agent depmig-lsm-test; do
    install -m 0755 "$bin/$b" "$out/$b"
done

# bookworm's package puts modules in /lib, trixie's (merged /usr) in /usr/lib.
modules="$kdir/lib/modules/$kver"
[ -d "$modules" ] || modules="$kdir/usr/lib/modules/$kver"
echo "kernel=$kdir/boot/vmlinuz-$kver"
echo "modules=$modules"
echo "bpf=$bpf_dir/depmig_lsm.bpf.o"
echo "agent=$out/depmig-lsm-agent"
echo "test=$out/depmig-lsm-test"
