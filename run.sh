#!/usr/bin/env bash
# depmig's main job on a fresh or warm machine: builds the nested-Xen rig and
# runs, in it, the appliance's self-test as a Xen PVH service domain and then
# the paper's experiment (qemu-tests/run.sh paper-mmuncher): one guest
# running guest-lsm's taint tracker, a ticker on the console and the paper's
# memory-dirtier, moved four times over links held to the same rate: stock
# `xl migrate`, then depmig's appliances in dependency-aware, paper-analysis
# and baseline mode. Prints `depmig compare`'s comparison (pages per round,
# downtime, total time, the targets) and the path of each per-migration
# report and of the plot, all under out/rig/paper-mmuncher/files/.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/lib.sh

need_pkgs build-essential libxen-dev
status=0
qemu-tests/run.sh appliance-selftest paper-mmuncher || status=$?
dir=out/rig/paper-mmuncher/files
if [ -s "$dir/paper-mmuncher.md" ]; then
    log "comparison: $dir/paper-mmuncher.md"
    cat "$dir/paper-mmuncher.md"
    echo
fi
for f in "$dir"/paper-mmuncher-*.json; do
    [ -s "$f" ] && log "report: $f"
done
[ -s "$dir/paper-mmuncher.svg" ] && log "plot: $dir/paper-mmuncher.svg"
exit "$status"
