# Shell helpers shared by the rig's build scripts and runner. Source it after
# scripts/lib.sh; do not run it.

: "${DEPMIG_RIG_CACHE:=$DEPMIG_CACHE/rig}"
mkdir -p "$DEPMIG_RIG_CACHE"

# xen_source_dir: the unpacked bookworm Xen source package (Debian patches
# applied), 4.17 only: the hypervisor patch and the tools pairing assume it.
xen_source_dir() {
    local dir ver
    dir=$(fetch_source xen)
    ver=$(cat "$dir/.depmig-version")
    case $ver in 4.17.*) ;; *) die "expected a Xen 4.17 source package, got $ver" ;; esac
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
