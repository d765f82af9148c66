#!/usr/bin/env bash
# Builds the rig's Xen hypervisor (DEPMIG_XEN, qemu-tests/lib.sh):
# - 4.20: upstream's source, `make defconfig` plus config.fragment; no patch.
#   It reports plain 4.20.4.
# - 4.20 with DEPMIG_XEN_FIX=1: the same plus, and only, the log-dirty fix
#   prepared for upstream (upstream/*.patch: paging_log_dirty_op() copies the
#   bitmap to the caller outside the paging lock, see upstream/README.md; a
#   4.20 backport in upstream/4.20/ would take its place). It reports
#   4.20.4-logdirtyfix. DEPMIG_XEN_FIX=1 with 4.17 is refused.
# - 4.17: Debian bookworm's source package, Debian's hypervisor config plus
#   config.fragment, with patches/*.patch applied; it reports 4.17.5-depmig.
# Prints the path of the uncompressed `xen` binary (what QEMU's -kernel takes).
# Cached under $DEPMIG_CACHE/xen/build-<hash of inputs>; a warm run is instant.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib.sh"
. "$here/../lib.sh"

need_pkgs build-essential flex bison checkpolicy python3 dpkg-dev xz-utils

: "${DEPMIG_XEN_FIX:=0}"
case $DEPMIG_XEN_FIX in 0|1) ;; *) die "DEPMIG_XEN_FIX=$DEPMIG_XEN_FIX: 0 or 1" ;; esac
[ "$DEPMIG_XEN_FIX" = 0 ] || [ "$DEPMIG_XEN" = 4.20 ] \
    || die "DEPMIG_XEN_FIX=1 needs DEPMIG_XEN=4.20 (4.17 carries patches/ instead)"

src=$(xen_source_dir)
# The source's identity: its version, and for upstream trees where it came
# from (a tarball's hash or a directory's path).
src_id=$(cat "$src/.depmig-version")
ver=${src_id%% *}
if [ "$DEPMIG_XEN" = 4.17 ]; then
    # The hypervisor says it carries depmig's patches in its extra version
    # (4.17.5-depmig): the appliance copies log-dirty bitmaps only from such a
    # Xen (patch 0002; stock 4.17 stops the host).
    vendor=-depmig
    patches=("$here"/patches/*.patch)
elif [ "$DEPMIG_XEN_FIX" = 1 ]; then
    # Upstream's fix alone, named in the extra version so `xl info` tells
    # this build from stock 4.20.4. The patch made against staging applies to
    # 4.20.4 as it is; a backport in upstream/4.20/ would be used instead.
    vendor=-logdirtyfix
    shopt -s nullglob
    patches=("$here"/upstream/4.20/*.patch)
    [ ${#patches[@]} -gt 0 ] || patches=("$here"/upstream/*.patch)
    shopt -u nullglob
    [ ${#patches[@]} -gt 0 ] || die "no patch in $here/upstream"
else
    vendor=
    patches=()
fi
# The key covers what decides the binary: source version, fragment, patches.
key=$( { echo "$src_id$vendor"; cat "$here/config.fragment"; [ ${#patches[@]} -eq 0 ] || cat "${patches[@]}"; } \
       | sha256sum | cut -c1-16)
out="$DEPMIG_CACHE/xen/build-$key"
if [ -f "$out/xen" ]; then
    printf '%s\n' "$out/xen"
    exit 0
fi

log "building Xen $ver$vendor hypervisor (inputs $key)"
t0=$(date +%s)
mkdir -p "$DEPMIG_CACHE/xen"
work=$(mktemp -d "$DEPMIG_CACHE/xen/work-$key.XXXXXX")
trap 'rm -rf "$work"' EXIT
rmdir "$work" && cp -a "$src" "$work"
for p in "${patches[@]}"; do
    log "applying $(basename "$p")"
    patch -d "$work" -p1 --forward --quiet < "$p" || die "patch $(basename "$p") does not apply"
done
if [ -f "$work/debian/xen-kconfig" ]; then
    cp "$work/debian/xen-kconfig" "$work/xen/.config"
else
    make -C "$work/xen" defconfig XEN_TARGET_ARCH=x86_64 >"$work/build.log" 2>&1 \
        || { tail -n 30 "$work/build.log" >&2; die "Xen defconfig failed"; }
fi
grep -v '^#' "$here/config.fragment" >> "$work/xen/.config"
make -C "$work/xen" olddefconfig XEN_TARGET_ARCH=x86_64 XEN_VENDORVERSION="$vendor" >>"$work/build.log" 2>&1 \
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
