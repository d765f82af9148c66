#!/usr/bin/env bash
# Builds the rig's workloads (qemu-tests/workloads) as static binaries for the
# guest's initramfs and dom0, in a target directory of their own under
# $DEPMIG_CACHE so the static flags reach no other crate. Prints the directory
# holding mmuncher, ticker, wlhttp and migpipe (stripped).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/scripts/lib.sh"

need_pkgs build-essential binutils
tdir="$DEPMIG_CACHE/workloads-target"
# An explicit --target keeps RUSTFLAGS away from build scripts and proc-macros.
(cd "$root" && RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build -q --release --target x86_64-unknown-linux-gnu \
    -p depmig-workloads --target-dir "$tdir") >&2 || die "building the workloads failed"
out="$tdir/static"
mkdir -p "$out"
for b in mmuncher ticker wlhttp migpipe; do
    src="$tdir/x86_64-unknown-linux-gnu/release/$b"
    file -b "$src" | grep -q 'static' || die "$b is not statically linked"
    if [ ! -f "$out/$b" ] || [ "$src" -nt "$out/$b" ]; then
        # Two rig runs at once may strip the same binary: each its own temporary.
        strip -o "$out/$b.tmp.$$" "$src" && mv -f "$out/$b.tmp.$$" "$out/$b"
    fi
done
printf '%s\n' "$out"
