#!/usr/bin/env bash
# Builds the rig's Xen hypervisor from Debian bookworm's source package:
# Debian's hypervisor config plus config.fragment, with patches/*.patch applied.
# Prints the path of the uncompressed `xen` binary (what QEMU's -kernel takes).
# Cached under $DEPMIG_CACHE/xen/build-<hash of inputs>; a warm run is instant.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib.sh"
. "$here/../lib.sh"

need_pkgs build-essential flex bison checkpolicy python3 dpkg-dev xz-utils

src=$(xen_source_dir)
ver=$(cat "$src/.depmig-version")
# The hypervisor says it carries depmig's patches in its extra version
# (4.17.5-depmig): the appliance copies log-dirty bitmaps only from such a
# Xen (patch 0002; stock 4.17 stops the host).
vendor=-depmig
# The key covers what decides the binary: source version, fragment, patches.
key=$( { echo "$ver$vendor"; cat "$here/config.fragment"; cat "$here"/patches/*.patch; } \
       | sha256sum | cut -c1-16)
out="$DEPMIG_CACHE/xen/build-$key"
if [ -f "$out/xen" ]; then
    printf '%s\n' "$out/xen"
    exit 0
fi

log "building Xen $ver hypervisor (inputs $key)"
t0=$(date +%s)
mkdir -p "$DEPMIG_CACHE/xen"
work=$(mktemp -d "$DEPMIG_CACHE/xen/work-$key.XXXXXX")
trap 'rm -rf "$work"' EXIT
rmdir "$work" && cp -a "$src" "$work"
for p in "$here"/patches/*.patch; do
    log "applying $(basename "$p")"
    patch -d "$work" -p1 --forward --quiet < "$p" || die "patch $(basename "$p") does not apply"
done
cp "$work/debian/xen-kconfig" "$work/xen/.config"
grep -v '^#' "$here/config.fragment" >> "$work/xen/.config"
make -C "$work/xen" olddefconfig XEN_TARGET_ARCH=x86_64 XEN_VENDORVERSION="$vendor" >"$work/build.log" 2>&1 \
    || { tail -n 30 "$work/build.log" >&2; die "Xen olddefconfig failed"; }
# Every option of the fragment must have survived olddefconfig.
while IFS= read -r opt; do
    grep -qx "$opt" "$work/xen/.config" || die "Xen config lost '$opt' (see $work/xen/.config)"
done < <(grep '^CONFIG_' "$here/config.fragment")
make -C "$work/xen" -j"$(nproc)" XEN_TARGET_ARCH=x86_64 XEN_VENDORVERSION="$vendor" >>"$work/build.log" 2>&1 \
    || { tail -n 40 "$work/build.log" >&2; die "Xen build failed"; }
[ -f "$work/xen/xen" ] || die "Xen build produced no xen/xen"

# Parallel builds of the same inputs each use their own directory; the first
# to finish publishes its result.
mkdir -p "$work/out"
cp "$work/xen/xen" "$work/xen/xen-syms" "$work/xen/.config" "$work/out/"
t1=$(date +%s)
echo "$((t1 - t0))" > "$work/out/build-seconds"
mv -T "$work/out" "$out" 2>/dev/null || [ -f "$out/xen" ] || die "cannot publish $out"
log "Xen hypervisor built in $((t1 - t0)) s: $out/xen"
printf '%s\n' "$out/xen"
