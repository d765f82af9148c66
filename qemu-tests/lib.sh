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
