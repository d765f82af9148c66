#!/usr/bin/env bash
# Builds the rig's dom0: Debian bookworm's kernel and an initramfs with
# busybox, the Xen toolstack of the rig's line (DEPMIG_XEN: 4.20 from Debian
# trixie, with trixie's glibc and the libraries it names; 4.17 from bookworm)
# — xl, xenstored, xenconsoled, flask tools, hotplug scripts — and the Xen
# kernel modules; no systemd. Packages are unpacked, never installed. Prints
# two lines: the path of the kernel and the path of the gzipped initramfs.
# Cached by a hash of the package versions and of this directory's files.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib.sh"
. "$here/../lib.sh"

need_pkgs busybox-static cpio gzip xz-utils bash util-linux kmod file build-essential

# Kernel modules the toolstack (event channels, privcmd, xenfs after privcmd,
# grant devices), guest networking (netback, bridge), the link between
# two hosts (virtio-net) and the export disk (virtio-blk) need, in load order.
modules=(xen-evtchn xen-privcmd xenfs xen-gntdev xen-gntalloc xen-netback bridge
         virtio_pci virtio_net virtio_blk)
line=$DEPMIG_XEN
xen_pkgs=(xen-utils-$line xen-utils-common xenstore-utils libxencall1 libxenevtchn1
          libxenforeignmemory1 libxengnttab1 libxenmisc$line libxenstore4 libxentoollog1
          libxenhypfs1 libxendevicemodel1 libxentoolcore1 libyajl2)
# trixie's toolstack runs on trixie's C library and the libraries its
# binaries and bash name (bookworm's dom0 takes those from the build host).
# ssh between the hosts of a two-host scenario: dropbear's server and client.
xen_pkgs+=(dropbear-bin libtomcrypt1 libtommath1 libcrypt1 libgmp10)
[ "$line" = 4.17 ] || xen_pkgs+=(libc6 libgcc-s1 libtinfo6 libncurses6 libext2fs2t64 libcom-err2
                                 liblzma5 libuuid1 libzstd1 zlib1g libbz2-1.0 libsmartcols1)

kpkg=$(debian_kernel_pkg)
[ -n "$kpkg" ] || die "cannot resolve the Debian kernel package"
apt_update_once
candidates() {
    awk '/^[^ ].*:$/ { p = substr($1, 1, length($1) - 1) } /Candidate:/ { print p "=" $2 }'
}
# One apt-cache call per archive for all candidates (each call costs seconds
# on a busy host).
kversion=$(apt-cache policy "$kpkg" | candidates)
if [ "$line" = 4.17 ]; then
    xversions=$(apt-cache policy "${xen_pkgs[@]}" | candidates)
else
    trixie_update_once
    xversions=$(trixie_apt apt-cache policy "${xen_pkgs[@]}" | candidates)
fi
[ "$(grep -c '=[^(]' <<<"$xversions")" -eq ${#xen_pkgs[@]} ] && [ -n "$kversion" ] \
    || die "cannot resolve dom0 package versions: $(tr '\n' ' ' <<<"$xversions")"
versions=$(printf '%s\n%s\n' "$kversion" "$xversions")
key=$( { echo "$line"; echo "$versions"; cat "$here"/build.sh "$here"/init "$here"/rig-lib.sh "$here"/../tools/*.c; } | sha256sum | cut -c1-16)
out="$DEPMIG_RIG_CACHE/dom0-$key"
if [ -f "$out/initrd.gz" ] && [ -f "$out/vmlinuz" ]; then
    printf '%s\n%s\n' "$out/vmlinuz" "$out/initrd.gz"
    exit 0
fi

log "building dom0 ($kpkg, $(grep "^xen-utils-$line=" <<<"$versions"))"
t0=$(date +%s.%N)
work=$(mktemp -d "$DEPMIG_RIG_CACHE/dom0-work.XXXXXX")
trap 'rm -rf "$work"' EXIT
pkgs="$work/pkgs" root="$work/root"
mkdir -p "$pkgs" "$root"
extract_deb "$kversion" "$pkgs" >/dev/null
while IFS= read -r spec; do
    if [ "$line" = 4.17 ]; then
        extract_deb "$spec" "$pkgs" >/dev/null
    else
        dpkg-deb -x "$(fetch_deb_trixie "$spec")" "$pkgs"
    fi
done <<<"$xversions"

kver=${kpkg#linux-image-}
# Parallel builds of the same key each fill their own directory; the first to
# finish publishes it.
tmpout="$work/out"
mkdir -p "$tmpout"
cp "$pkgs/boot/vmlinuz-$kver" "$tmpout/vmlinuz"

# Layout: busybox for everything basic; bash and flock for Xen's hotplug scripts.
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,etc,proc,sys,dev,run,tmp,var/lib/xen,var/log/xen,rig}
ln -s ../run "$root/var/run"
cp /bin/busybox "$root/bin/busybox"
for a in $(/bin/busybox --list); do
    [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
done
cp -L /bin/bash "$root/bin/bash"
rm -f "$root/bin/flock" && cp -L "$(command -v flock)" "$root/bin/flock"

# The toolstack: binaries under /usr/lib/xen-<line>/bin (on PATH), libraries, scripts.
xl_dir=usr/lib/xen-$line
mkdir -p "$root/$xl_dir" "$root/usr/lib/x86_64-linux-gnu"
cp -a "$pkgs/$xl_dir/bin" "$root/$xl_dir/"
rm -f "$root/$xl_dir/bin/pygrub" "$root/$xl_dir/bin/xenpvnetboot"
cp -a "$pkgs"/usr/lib/x86_64-linux-gnu/lib{xen,yajl,xl}*.so* "$root/usr/lib/x86_64-linux-gnu/"
cp -a "$pkgs"/usr/bin/xenstore* "$root/usr/bin/"
cp -a "$pkgs/etc/xen" "$root/etc/"
cp -a "$pkgs/usr/sbin/dropbear" "$root/usr/sbin/"
cp -a "$pkgs/usr/bin/dbclient" "$pkgs/usr/bin/dropbearkey" "$root/usr/bin/"
cp -a "$pkgs"/usr/lib/x86_64-linux-gnu/lib{tom,gmp}*.so* "$root/usr/lib/x86_64-linux-gnu/"
# libxl looks for its helpers under the versioned libexec directory.
mkdir -p "$root/$xl_dir/boot"

# trixie's C library and loader, where the line needs them: every program
# in dom0, the build host's bash and flock too, then runs on them.
if [ "$line" != 4.17 ]; then
    cp -a "$pkgs"/usr/lib/x86_64-linux-gnu/*.so* "$root/usr/lib/x86_64-linux-gnu/"
    mkdir -p "$root/lib64"
    cp -L "$pkgs/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" "$root/lib64/ld-linux-x86-64.so.2"
    list_libs() {
        "$root/lib64/ld-linux-x86-64.so.2" --library-path "$root/usr/lib/x86_64-linux-gnu" --list "$1"
    }
else
    list_libs() { LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu" ldd "$1"; }
fi

# Shared libraries of every ELF file, from the unpacked packages or the host.
copy_libs() {
    local f lib
    for f in "$@"; do
        file -b "$f" | grep -q '^ELF.*dynamic' || continue
        list_libs "$f" 2>/dev/null \
            | awk '/=> not found/ { print "MISSING " $1 } /=> \// { print $3 } /^\t\/lib64/ { print $1 }'
    done | sort -u | while read -r lib; do
        case $lib in
            MISSING*) die "library ${lib#MISSING } not found for the dom0 toolstack" ;;
            "$root"/*) ;;
            # trixie's programs must not run on the build host's libraries.
            *) [ "$line" = 4.17 ] || [ "$lib" = /lib64/ld-linux-x86-64.so.2 ] \
                   || die "dom0 would take $lib from the build host: add its trixie package" ;;&
            *) mkdir -p "$root$(dirname "$lib")"; [ -e "$root$lib" ] || cp -L "$lib" "$root$lib" ;;
        esac
    done
}
# glibc loads libgcc_s at run time for pthread_cancel (xl uses it): ldd cannot
# see that (trixie's comes with the libraries copied above).
if [ "$line" = 4.17 ]; then
    gcc_s=$(ldconfig -p | awk '/libgcc_s.so.1 .*x86-64/ { print $NF; exit }')
    [ -n "$gcc_s" ] || die "libgcc_s.so.1 not found on the build host"
    mkdir -p "$root$(dirname "$gcc_s")" && cp -L "$gcc_s" "$root$gcc_s"
fi
[ -e "$root/usr/lib/x86_64-linux-gnu/libgcc_s.so.1" ] || [ -n "$(find "$root" -name libgcc_s.so.1 | head -n 1)" ] \
    || die "libgcc_s.so.1 missing from dom0"
copy_libs "$root/bin/bash" "$root/bin/flock" "$root/$xl_dir"/bin/* "$root"/usr/bin/xenstore* \
    "$root"/usr/lib/x86_64-linux-gnu/*.so* "$root/usr/sbin/dropbear" "$root"/usr/bin/{dbclient,dropbearkey}

# ssh keys, made per build (the rig's hosts boot the same image): the
# host key, and root's key, which every host accepts. `ssh` is dropbear's
# client with that key, accepting the rig's own hosts on first contact.
run_root() {
    if [ "$line" = 4.17 ]; then
        LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu" "$@"
    else
        "$root/lib64/ld-linux-x86-64.so.2" --library-path "$root/usr/lib/x86_64-linux-gnu" "$@"
    fi
}
mkdir -p "$root/etc/dropbear" "$root/root/.ssh"
run_root "$root/usr/bin/dropbearkey" -t ed25519 -f "$root/etc/dropbear/dropbear_ed25519_host_key" >/dev/null 2>&1 \
    || die "dropbearkey failed"
run_root "$root/usr/bin/dropbearkey" -t ed25519 -f "$root/root/.ssh/id_dropbear" 2>/dev/null \
    | grep '^ssh-ed25519 ' > "$root/root/.ssh/authorized_keys" || die "no public key from dropbearkey"
chmod 700 "$root/root" "$root/root/.ssh"
chmod 600 "$root/root/.ssh/authorized_keys" "$root/root/.ssh/id_dropbear"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"
printf '/bin/sh\n' > "$root/etc/shells"
cat > "$root/usr/bin/ssh" <<'SSH'
#!/bin/sh
# The rig's ssh: dropbear's client with root's key; the peers are the rig's
# own hosts, whose keys it accepts on first contact.
exec dbclient -y -i /root/.ssh/id_dropbear "$@"
SSH
chmod +x "$root/usr/bin/ssh"

# Kernel modules with their dependencies, decompressed, in load order.
mdir="$pkgs/lib/modules/$kver"
[ -d "$mdir" ] || mdir="$pkgs/usr/lib/modules/$kver"
# The package ships no modules.dep (depmod runs at install time): make one.
depmod -b "${mdir%/lib/modules/$kver}" "$kver" || die "depmod for $kver failed"
[ -f "$mdir/modules.dep" ] || die "no modules.dep for $kpkg"
mkdir -p "$root/lib/modules"
: > "$root/etc/modules.order"
declare -A seen=()
add_module() {
    local name=$1 path deps d
    [ -n "${seen[$name]:-}" ] && return 0
    seen[$name]=1
    path=$(awk -F: -v n="$name" '{ f = $1; sub(/.*\//, "", f); sub(/\.ko(\.[a-z]+)?$/, "", f);
                                   gsub(/-/, "_", f); m = n; gsub(/-/, "_", m); if (f == m) { print $1; exit } }' "$mdir/modules.dep")
    if [ -z "$path" ]; then
        grep -q "/${name//-/[-_]}\.ko" "$mdir/modules.builtin" 2>/dev/null && return 0
        die "kernel module $name is neither in modules.dep nor built in"
    fi
    deps=$(awk -F': *' -v p="$path" '$1 == p { print $2; exit }' "$mdir/modules.dep")
    for d in $deps; do
        d=${d##*/}; add_module "${d%%.ko*}"
    done
    local base=${path##*/}
    case $base in
        *.ko.xz) xz -dc "$mdir/$path" > "$root/lib/modules/${base%.xz}" ;;
        *.ko) cp "$mdir/$path" "$root/lib/modules/$base" ;;
        *) die "unknown module format $base" ;;
    esac
    echo "${base%.xz}" >> "$root/etc/modules.order"
}
for m in "${modules[@]}"; do add_module "$m"; done

# The rig's own small test tools.
mkdir -p "$root/rig/bin"
gcc -O2 -Wall -Wextra -Werror -static -o "$root/rig/bin/foreignmap" "$here/../tools/foreignmap.c" \
    || die "building foreignmap failed"
cp "$here/init" "$root/init"
chmod +x "$root/init"
cp "$here/rig-lib.sh" "$root/rig/lib.sh"
echo "$kver" > "$root/etc/dom0-kernel"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) | gzip -6 > "$tmpout/initrd.gz"
mv -T "$tmpout" "$out" 2>/dev/null || [ -f "$out/initrd.gz" ] || die "cannot publish $out"
t1=$(date +%s.%N)
log "dom0 built in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s: initramfs $(du -h "$out/initrd.gz" | cut -f1)"
printf '%s\n%s\n' "$out/vmlinuz" "$out/initrd.gz"
