#!/usr/bin/env bash
# depmig's main job on a fresh or warm machine: builds the nested-Xen rig and
# runs, in it, the appliance's self-test as a Xen PVH service domain and then
# the side-by-side migration of the 100 MiB memory-dirtier guest: stock
# `xl migrate` first, then depmig's two appliances (`depmig migrate`), over
# links held to the same rate. Prints both per-round reports; the plot of
# both is out/rig/migrate-mmuncher/files/depmig-mmuncher.svg.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/lib.sh

need_pkgs build-essential libxen-dev
status=0
qemu-tests/run.sh appliance-selftest migrate-mmuncher || status=$?
dir=out/rig/migrate-mmuncher/files
for f in "$dir/baseline-mmuncher.json" "$dir/depmig-mmuncher.json"; do
    if [ -s "$f" ]; then
        log "report: $f"
        cat "$f"
        echo
    fi
done
[ -s "$dir/depmig-mmuncher.svg" ] && log "plot: $dir/depmig-mmuncher.svg"
exit "$status"
