#!/usr/bin/env bash
# Host-side preparation shared by the guest-* and baseline-* scenarios (their
# .prep hooks call it): builds the guest and the static workloads and puts
# them, with the dom0-side helpers, into the scenario directory DEST that the
# runner appends to dom0's initramfs as /scenario:
#   DEST/guest/{vmlinuz,initrd.gz}   the PVH guest
#   DEST/bin/{wlhttp,migpipe,...}    static tools for dom0
#   DEST/rig-guest.sh, DEST/baseline.sh  helpers the scenario scripts source
# Arguments after DEST go to build.sh (e.g. --extra SRC=/DEST for an agent).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:?usage: prep.sh DEST [--extra SRC=/DEST]...}
shift
{ read -r kernel; read -r initrd; } < <("$here/build.sh" "$@")
wl="${DEPMIG_CACHE:-/var/cache/depmig}/workloads-target/static"
mkdir -p "$dest/guest" "$dest/bin"
cp "$kernel" "$dest/guest/vmlinuz"
cp "$initrd" "$dest/guest/initrd.gz"
cp "$wl"/{mmuncher,ticker,wlhttp,migpipe} "$dest/bin/"
cp "$here/rig-guest.sh" "$dest/rig-guest.sh"
cp "$here/../baseline/baseline.sh" "$dest/baseline.sh"
