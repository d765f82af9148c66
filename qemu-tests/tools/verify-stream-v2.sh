#!/usr/bin/env bash
# Xen's own stream verifier, verify-stream-v2, from the xen-utils package of
# the rig's Xen line (the same Debian archive dom0's toolstack comes from),
# run on this host: the rig's dom0 carries no python. Arguments are the
# verifier's (e.g. --format xl -i FILE). The package is unpacked once into
# the rig's cache; nothing is installed but the host's python3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib.sh"
. "$here/../lib.sh"

need_pkgs python3
if [ "$DEPMIG_XEN" = 4.17 ]; then
    deb=$(fetch_deb "xen-utils-$DEPMIG_XEN")
else
    deb=$(fetch_deb_trixie "xen-utils-$DEPMIG_XEN")
fi
dir="$DEPMIG_RIG_CACHE/verifier-$(basename "$deb" .deb)"
if [ ! -x "$dir/usr/lib/xen-$DEPMIG_XEN/bin/verify-stream-v2" ]; then
    tmp=$(mktemp -d "$DEPMIG_RIG_CACHE/verifier.XXXXXX")
    dpkg-deb -x "$deb" "$tmp"
    mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
fi
lib="$dir/usr/lib/xen-$DEPMIG_XEN"
[ -x "$lib/bin/verify-stream-v2" ] || die "$(basename "$deb") has no verify-stream-v2"
log "verify-stream-v2 from $(basename "$deb"), python $(python3 -c 'import sys; print(sys.version.split()[0])')"
# -S: the verifier needs nothing from site-packages, only the package's own
# xen.migration modules.
PYTHONPATH="$lib/lib/python" exec python3 -S "$lib/bin/verify-stream-v2" "$@"
