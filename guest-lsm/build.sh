#!/usr/bin/env bash
# Builds guest-lsm for the guest kernel: unpacks Debian's kernel, generates
# vmlinux.h from its BTF, compiles the BPF object and the static agent and
# test binaries, and prints where they are (one "name=path" line each).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../scripts/lib.sh"

need_pkgs clang llvm bpftool libbpf-dev xz-utils

kpkg=$(debian_kernel_pkg)
[ -n "$kpkg" ] || die "cannot resolve the Debian kernel package"
kver=${kpkg#linux-image-}
kdir="$DEPMIG_CACHE/guest-lsm/kernel-$kpkg"
out="$DEPMIG_CACHE/guest-lsm/out"
mkdir -p "$out"

if [ ! -f "$kdir/boot/vmlinuz-$kver" ]; then
    log "unpacking $kpkg"
    rm -rf "$kdir.tmp" && extract_deb "$kpkg" "$kdir.tmp" && mv "$kdir.tmp" "$kdir"
fi

# vmlinux.h from the kernel's own BTF: the bzImage payload is xz (Debian's
# CONFIG_KERNEL_XZ); decompress the first xz stream into an ELF and dump it.
gen="$DEPMIG_CACHE/guest-lsm/gen-$kver"
if [ ! -s "$gen/vmlinux.h" ]; then
    log "generating vmlinux.h for $kver"
    mkdir -p "$gen"
    grep -q '^CONFIG_KERNEL_XZ=y' "$kdir/boot/config-$kver" \
        || die "kernel $kver is not xz-compressed; teach build.sh its format"
    off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$kdir/boot/vmlinuz-$kver" | head -n 1 | cut -d: -f1)
    [ -n "$off" ] || die "no xz stream in vmlinuz-$kver"
    # (a file, not a pipe: xz stops after the stream, which would kill tail)
    tail -c +$((off + 1)) "$kdir/boot/vmlinuz-$kver" > "$gen/payload.xz"
    xz -dc --single-stream "$gen/payload.xz" > "$gen/vmlinux" \
        || die "cannot decompress vmlinuz-$kver"
    rm -f "$gen/payload.xz"
    bpftool btf dump file "$gen/vmlinux" format c > "$gen/vmlinux.h.tmp" \
        || die "no BTF in the guest kernel"
    mv "$gen/vmlinux.h.tmp" "$gen/vmlinux.h"
    rm -f "$gen/vmlinux"
fi

log "compiling the BPF object"
clang -O2 -g -target bpf -mcpu=v3 -D__TARGET_ARCH_x86 -Wall -Werror \
    -I "$gen" -I "$here/bpf" \
    -c "$here/bpf/depmig_lsm.bpf.c" -o "$out/depmig_lsm.bpf.o.tmp"
mv "$out/depmig_lsm.bpf.o.tmp" "$out/depmig_lsm.bpf.o"

log "building the static agent and test binaries"
# An explicit --target keeps crt-static away from build scripts and macros.
(cd "$here" && RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target x86_64-unknown-linux-gnu \
    --target-dir "$DEPMIG_CACHE/guest-lsm/target" --bins >&2)
bin="$DEPMIG_CACHE/guest-lsm/target/x86_64-unknown-linux-gnu/release"
for b in depmig-lsm-agent depmig-lsm-test; do
    install -m 0755 "$bin/$b" "$out/$b"
done

echo "kernel=$kdir/boot/vmlinuz-$kver"
echo "modules=$kdir/lib/modules/$kver"
echo "bpf=$out/depmig_lsm.bpf.o"
echo "agent=$out/depmig-lsm-agent"
echo "test=$out/depmig-lsm-test"
