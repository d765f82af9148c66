# Shell helpers shared by the rig's build scripts and runner. Source it after
# scripts/lib.sh; do not run it.

: "${DEPMIG_RIG_CACHE:=$DEPMIG_CACHE/rig}"
mkdir -p "$DEPMIG_RIG_CACHE"

# The Xen the rig runs: DEPMIG_XEN=4.20 (stock Xen 4.20.4 built from
# upstream's source with FLASK and shadow paging switched on in Kconfig, no
# patches, unless DEPMIG_XEN_FIX=1 adds the log-dirty fix of xen/upstream/;
# dom0's toolstack from Debian trixie's xen-utils-4.20) or 4.17 (Debian
# bookworm's 4.17.5 source with the rig's three hypervisor patches and
# bookworm's toolstack). The default is 4.20; only where no 4.20 source can
# be had (see xen_source_dir) does the rig fall back to 4.17, and says so.
_rig_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
XEN420_TARBALL="$_rig_here/../../shared/xen/xen-4.20.4-hypervisor.tar.xz"
if [ -z "${DEPMIG_XEN:-}" ]; then
    if [ -n "${DEPMIG_XEN_SOURCE:-}" ] || [ -f "$XEN420_TARBALL" ] \
        || compgen -G "$DEPMIG_CACHE/src/xen-4.20.*/.depmig-version" >/dev/null; then
        DEPMIG_XEN=4.20
    else
        log "warning: no Xen 4.20 source at hand (DEPMIG_XEN_SOURCE unset, $XEN420_TARBALL missing): the rig runs Xen 4.17 (DEPMIG_XEN=4.20 takes Debian's 4.20 source package where apt serves one)"
        DEPMIG_XEN=4.17
    fi
fi
case $DEPMIG_XEN in 4.17|4.20) ;; *) die "DEPMIG_XEN=$DEPMIG_XEN: the rig runs Xen 4.20 or 4.17" ;; esac
export DEPMIG_XEN

# Upstream's RELEASE-4.20.4 hypervisor tree (xen/, tools/flask/, config/,
# Config.mk ...), where Debian's trixie source package cannot be fetched.
XEN420_TARBALL_SHA256=b68baf538ad1b6d83552358fb746939252ba7727d0f17e1ae6ec4e7ffa0805df

# xen_source_dir: the unpacked Xen source of the rig's line (above): for 4.17
# bookworm's source package (Debian patches applied); for 4.20
# DEPMIG_XEN_SOURCE (a directory or a .tar.xz of upstream's tree) if set,
# else Debian's 4.20 source package unpacked earlier, else the 4.20.4 tarball
# beside the checkout (../shared/xen/, checked by its sha256), else Debian's
# source package where apt serves a 4.20 one.
xen_source_dir() {
    local dir ver src
    if [ "$DEPMIG_XEN" = 4.17 ]; then
        dir=$(ls -1d "$DEPMIG_CACHE/src/xen-4.17."*/.depmig-version 2>/dev/null | sort -V | tail -n 1)
        if [ -n "$dir" ]; then dir=$(dirname "$dir"); else dir=$(fetch_source xen); fi
        ver=$(cat "$dir/.depmig-version")
        case $ver in 4.17.*) ;; *) die "expected a Xen 4.17 source package, got $ver" ;; esac
        printf '%s\n' "$dir"
        return 0
    fi
    src=${DEPMIG_XEN_SOURCE:-}
    if [ -z "$src" ]; then
        dir=$(ls -1d "$DEPMIG_CACHE/src/xen-4.20."*/.depmig-version 2>/dev/null | sort -V | tail -n 1)
        [ -n "$dir" ] && { dirname "$dir"; return 0; }
        if [ -f "$XEN420_TARBALL" ]; then
            [ "$(sha256sum < "$XEN420_TARBALL" | cut -d' ' -f1)" = "$XEN420_TARBALL_SHA256" ] \
                || die "$XEN420_TARBALL is not the known RELEASE-4.20.4 tree (sha256 differs)"
            src=$XEN420_TARBALL
        else
            need_pkgs dpkg-dev
            need_deb_src
            apt_update_once
            ver=$(apt-cache showsrc xen 2>/dev/null | awk '/^Version: 4\.20\./ { print $2 }' | sort -V | tail -n 1)
            [ -n "$ver" ] || die "no Xen 4.20 source: apt serves none and $XEN420_TARBALL is missing (set DEPMIG_XEN_SOURCE)"
            fetch_source "xen=$ver"
            return 0
        fi
    fi
    if [ -d "$src" ]; then
        [ -f "$src/xen/Makefile" ] || die "DEPMIG_XEN_SOURCE=$src holds no xen/Makefile"
        ver=$(make -s -C "$src/xen" xenversion 2>/dev/null) || ver=
        case $ver in 4.20.*) ;; *) die "$src is not a Xen 4.20 tree (xenversion '$ver')" ;; esac
        # The builds key on .depmig-version: the tree's path goes in with
        # its version, so another tree of the same version builds anew.
        [ "$(cat "$src/.depmig-version" 2>/dev/null)" = "$ver $(cd "$src" && pwd)" ] \
            || printf '%s %s\n' "$ver" "$(cd "$src" && pwd)" > "$src/.depmig-version" \
            || die "cannot write $src/.depmig-version"
        printf '%s\n' "$(cd "$src" && pwd)"
        return 0
    fi
    [ -f "$src" ] || die "Xen source $src not found"
    dir="$DEPMIG_CACHE/src/upstream-xen-$(sha256sum < "$src" | cut -c1-16)"
    if [ ! -f "$dir/.depmig-version" ]; then
        need_pkgs xz-utils
        local tmp top
        # Two runs at once each unpack into their own directory; the first
        # to finish publishes it.
        mkdir -p "$DEPMIG_CACHE/src"
        tmp=$(mktemp -d "$DEPMIG_CACHE/src/unpack.XXXXXX") || die "cannot make a directory under $DEPMIG_CACHE/src"
        tar -xJf "$src" -C "$tmp" || { rm -rf "$tmp"; die "cannot unpack $src"; }
        # A git archive may or may not have a top directory.
        top=$tmp
        if [ ! -f "$tmp/xen/Makefile" ]; then
            top=$(find "$tmp" -mindepth 2 -maxdepth 3 -path '*/xen/Makefile' | head -n 1)
            [ -n "$top" ] || { rm -rf "$tmp"; die "$src holds no xen/Makefile"; }
            top=${top%/xen/Makefile}
        fi
        ver=$(make -s -C "$top/xen" xenversion 2>/dev/null) || ver=
        case $ver in 4.20.*) ;; *) rm -rf "$tmp"; die "$src is not a Xen 4.20 tree (xenversion '$ver')" ;; esac
        # The tarball's hash is in the directory's name and, with the
        # version, in what the builds key on.
        printf '%s %s\n' "$ver" "${dir##*/}" > "$top/.depmig-version"
        mv -T "$top" "$dir" 2>/dev/null || [ -f "$dir/.depmig-version" ] || die "cannot publish $dir"
        rm -rf "$tmp"
    fi
    printf '%s\n' "$dir"
}

# hash_inputs FILE...: short content hash of files (names excluded), for cache keys.
hash_inputs() {
    cat "$@" | sha256sum | cut -c1-16
}

# rig_domu_initrd OUT FILE...: an initramfs for a test domU: dom0's initramfs
# (whose init runs /scenario/SCRIPT when the domU's command line says
# rig.domu=SCRIPT) plus FILEs under /scenario. For .prep hooks, which get
# dom0's initramfs as $DEPMIG_DOM0_INITRD.
rig_domu_initrd() {
    local out=$1 tmp pad f; shift
    tmp=$(mktemp -d)
    mkdir -p "$tmp/scenario"
    for f in "$@"; do cp "$f" "$tmp/scenario/"; done
    cp "${DEPMIG_DOM0_INITRD:?}" "$out"
    pad=$(( (4 - $(stat -c %s "$out") % 4) % 4 ))
    head -c "$pad" /dev/zero >> "$out"
    (cd "$tmp" && find scenario | LC_ALL=C sort | cpio -o -H newc --quiet) >> "$out"
    rm -rf "$tmp"
}
