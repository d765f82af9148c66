# Shared shell helpers for depmig's set-up and test scripts. Source it; do not run it.
#
# Everything downloaded or built outside the checkout goes under $DEPMIG_CACHE so
# that a second run on the same machine is warm; deleting that directory gives a
# cold run.

: "${DEPMIG_CACHE:=/var/cache/depmig}"
export DEPMIG_CACHE
mkdir -p "$DEPMIG_CACHE"

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# need_pkgs PKG...: install the Debian packages that are not installed yet.
need_pkgs() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing Debian packages: ${missing[*]}"
    apt_update_once
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
        "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
}

# apt_update_once: refresh the package lists at most once per script run.
apt_update_once() {
    [ -n "${_DEPMIG_APT_UPDATED:-}" ] && return 0
    # Another apt run (e.g. a parallel build) may hold the lists lock: wait.
    apt_update_retrying "" apt-get -o DPkg::Lock::Timeout=300 update -q
    _DEPMIG_APT_UPDATED=1
}

# apt_update_retrying WHAT CMD...: runs an apt update command, up to ten
# times 15 s apart (a mirror's hiccup or another apt holding a lock).
apt_update_retrying() {
    local what=$1 try; shift
    for try in 1 2 3 4 5 6 7 8 9 10; do
        "$@" >&2 && return 0
        [ "$try" = 10 ] && die "apt-get update${what:+ ($what)} failed"
        log "apt-get update${what:+ ($what)} failed (try $try), retrying in 15 s"; sleep 15
    done
}

# fetch_deb PKG[=VERSION]: download a .deb (not installed) into the cache and
# print its path. Cached by name and version.
fetch_deb() {
    fetch_deb_into "$DEPMIG_CACHE/debs" apt_update_once "" "$1"
}

# fetch_deb_into DIR UPDATE RUNNER PKG[=VERSION]: fetch_deb from the archive
# that the function UPDATE refreshes and RUNNER (empty: the host's apt)
# reaches, cached in DIR.
fetch_deb_into() {
    local dir=$1 update=$2 runner=$3 spec=$4 f
    mkdir -p "$dir"
    f=$(find_cached_deb "$spec" "$dir")
    if [ -z "$f" ]; then
        "$update"
        (cd "$dir" && $runner apt-get download -q "$spec" >&2) || die "apt-get download $spec failed"
        f=$(find_cached_deb "$spec" "$dir")
        [ -n "$f" ] || die "downloaded $spec but cannot find its .deb"
    fi
    printf '%s\n' "$f"
}

# Debian trixie's binary packages, fetched without touching the host's own
# apt: a private sources file (the host's bookworm mirror and keyring, suite
# trixie), lists and an empty dpkg status under $DEPMIG_CACHE/apt-trixie.
# The rig's dom0 takes Xen 4.20's toolstack from there (its xl needs trixie's
# glibc); nothing from trixie is installed on the host.
_TRIXIE_DIR="$DEPMIG_CACHE/apt-trixie"

# trixie_apt CMD ARGS...: runs apt-get or apt-cache (CMD) against trixie
# alone. apt's own locks are off for the private state; a lock of our own
# keeps two runs at once (e.g. two rigs building) from sharing it mid-update.
trixie_apt() {
    local cmd=$1; shift
    mkdir -p "$_TRIXIE_DIR"
    flock "$_TRIXIE_DIR/lock" "$cmd" -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$_TRIXIE_DIR/sources" \
        -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts="$_TRIXIE_DIR/preferences" \
        -o Dir::State::Lists="$_TRIXIE_DIR/lists" -o Dir::State::Status="$_TRIXIE_DIR/status" \
        -o Dir::Cache="$_TRIXIE_DIR/cache" -o APT::Architecture=amd64 -o APT::Architectures=amd64 \
        -o Debug::NoLocking=1 -o APT::Sandbox::User=root "$@"
}

# trixie_update_once: writes the private sources (first time) and refreshes
# trixie's lists at most once per script run.
trixie_update_once() {
    [ -n "${_DEPMIG_TRIXIE_UPDATED:-}" ] && return 0
    local main=/etc/apt/sources.list.d/debian.sources uri key
    mkdir -p "$_TRIXIE_DIR"/{sources,preferences,lists/partial,cache/archives/partial}
    touch "$_TRIXIE_DIR/status"
    if [ ! -s "$_TRIXIE_DIR/sources/trixie.sources" ]; then
        uri=$(awk '/^URIs:/ { u = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") { print u; exit } }' "$main" 2>/dev/null) || uri=
        key=$(awk '/^Signed-By:/ { print $2; exit }' "$main" 2>/dev/null) || key=
        [ -n "$uri" ] || die "no bookworm entry in $main (deb822) to take trixie's mirror from"
        printf 'Types: deb\nURIs: %s\nSuites: trixie trixie-updates\nComponents: main\n%s\n' \
            "$uri" "${key:+Signed-By: $key}" > "$_TRIXIE_DIR/sources/trixie.sources"
    fi
    apt_update_retrying trixie trixie_apt apt-get update -q
    _DEPMIG_TRIXIE_UPDATED=1
}

# fetch_deb_trixie PKG[=VERSION]: fetch_deb for a trixie package.
fetch_deb_trixie() {
    fetch_deb_into "$DEPMIG_CACHE/debs-trixie" trixie_update_once trixie_apt "$1"
}

# find_cached_deb PKG[=VERSION] DIR: the newest cached .deb of PKG in DIR.
find_cached_deb() {
    local name=${1%%=*} ver= dir=$2
    [ "$1" != "$name" ] && ver=${1#*=}
    # Debian file names encode ':' in versions as '%3a'.
    ver=${ver//:/%3a}
    # The version glob must stay unquoted to expand when no version is given.
    if [ -n "$ver" ]; then
        ls -1 "$dir/${name}_${ver}"_*.deb
    else
        ls -1 "$dir/${name}"_*_*.deb
    fi 2>/dev/null | sort -V | tail -n 1
}

# extract_deb PKG[=VERSION] DEST: unpack a package's files (not its scripts) into DEST.
extract_deb() {
    local deb
    deb=$(fetch_deb "$1")
    mkdir -p "$2"
    dpkg-deb -x "$deb" "$2"
}

# debian_kernel_pkg: the versioned Debian kernel package (e.g.
# linux-image-6.1.0-56-amd64) that the meta-package linux-image-amd64 points at.
# dom0, the rig's guest and the plain-QEMU guest tests all boot this one kernel.
debian_kernel_pkg() {
    apt_update_once
    apt-cache depends linux-image-amd64 2>/dev/null \
        | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}

# need_deb_src: make sure apt knows the bookworm main source packages, with the
# same mirror and key as the binary entry in debian.sources.
need_deb_src() {
    local f=/etc/apt/sources.list.d/depmig-src.sources main=/etc/apt/sources.list.d/debian.sources
    [ -f "$f" ] && return 0
    grep -qs '^Types:.*deb-src' "$main" && return 0
    local uri key
    uri=$(awk '/^URIs:/ { u = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") { print u; exit } }' "$main")
    key=$(awk '/^Signed-By:/ { print $2; exit }' "$main")
    [ -n "$uri" ] || die "no bookworm entry in $main"
    log "adding a deb-src entry for bookworm main ($f)"
    printf 'Types: deb-src\nURIs: %s\nSuites: bookworm\nComponents: main\n%s\n' \
        "$uri" "${key:+Signed-By: $key}" > "$f"
    _DEPMIG_APT_UPDATED=
}

# fetch_source PKG[=VERSION]: download and unpack a Debian source package (its
# patches applied) under $DEPMIG_CACHE/src and print the unpacked directory.
fetch_source() {
    local spec=$1 name=${1%%=*} ver dir
    ver=${spec#*=}
    if [ "$ver" = "$spec" ]; then
        # Without a version, a package unpacked earlier is good enough (warm runs
        # stay off the network).
        dir=$(ls -1d "$DEPMIG_CACHE/src/$name"-*/.depmig-version 2>/dev/null | sort -V | tail -n 1)
        [ -n "$dir" ] && { dirname "$dir"; return 0; }
    fi
    need_pkgs dpkg-dev
    need_deb_src
    apt_update_once
    [ "$ver" = "$spec" ] && ver=$(apt-cache showsrc "$name" | awk '/^Version:/ { print $2 }' | sort -V | tail -n 1)
    [ -n "$ver" ] || die "no source package $name"
    dir="$DEPMIG_CACHE/src/$name-$ver"
    if [ ! -f "$dir/.depmig-version" ]; then
        mkdir -p "$DEPMIG_CACHE/src/dl-$name"
        (cd "$DEPMIG_CACHE/src/dl-$name" && apt-get source --download-only -q "$name=$ver" >&2) \
            || die "apt-get source $name=$ver failed"
        rm -rf "$dir"
        dpkg-source -x "$DEPMIG_CACHE/src/dl-$name/${name}_${ver#*:}.dsc" "$dir" >&2 \
            || die "dpkg-source -x $name $ver failed"
        printf '%s\n' "$ver" > "$dir/.depmig-version"
    fi
    printf '%s\n' "$dir"
}
