#!/usr/bin/env bash
# Builds the rig's FLASK policy: Xen's default policy from the Xen source
# package (tools/flask/policy) with the depmig module (depmig.te, depmig.if)
# added. Prints the path of the binary policy, which the rig loads as a
# multiboot module (Xen recognises it by its magic). Cached by input hash.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib.sh"
. "$here/../lib.sh"

need_pkgs checkpolicy m4 make gawk

src=$(xen_source_dir)
key=$( { cat "$src/.depmig-version" "$here"/build.sh "$here"/depmig.te "$here"/depmig.if; } | sha256sum | cut -c1-16)
out="$DEPMIG_RIG_CACHE/flask-$key"
if [ -f "$out/policy.bin" ]; then
    printf '%s\n' "$out/policy.bin"
    exit 0
fi

work=$(mktemp -d "$DEPMIG_RIG_CACHE/flask-work.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Makefile.common finds the hypervisor's classes at ../../../xen/xsm/flask/policy.
mkdir -p "$work/tools/flask" "$work/xen/xsm/flask"
cp -a "$src/tools/flask/policy" "$work/tools/flask/"
cp -a "$src/xen/xsm/flask/policy" "$work/xen/xsm/flask/"
pol="$work/tools/flask/policy"
cp "$here/depmig.te" "$here/depmig.if" "$pol/modules/"
printf 'depmig = on\n' >> "$pol/modules/modules.conf"
mkdir -p "$work/build"
make -s -C "$pol" -f Makefile.common FLASK_BUILD_DIR="$work/build" \
    POLICY_FILENAME="$work/build/policy.bin" >"$work/build.log" 2>&1 \
    || { cat "$work/build.log" >&2; die "FLASK policy build failed"; }
mkdir -p "$work/out"
cp "$work/build/policy.bin" "$work/build/policy.conf" "$work/out/"
mv -T "$work/out" "$out" 2>/dev/null || [ -f "$out/policy.bin" ] || die "cannot publish $out"
log "FLASK policy built: $out/policy.bin"
printf '%s\n' "$out/policy.bin"
