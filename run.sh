#!/usr/bin/env bash
# depmig's main job on a fresh or warm machine: builds the nested-Xen rig and
# runs, in it, the appliance's self-test as a Xen PVH service domain and then
# the paper's experiment (qemu-tests/run.sh paper-mmuncher): one guest
# running guest-lsm's taint tracker, a ticker on the console and the paper's
# memory-dirtier, moved four times over links held to the same rate: stock
# `xl migrate`, then depmig's appliances in dependency-aware, paper-analysis
# and baseline mode. Prints `depmig compare`'s comparison (pages per round,
# downtime, total time, the targets) and the path of each per-migration
# report and of the plot, all under out/rig/paper-mmuncher/files/. Then the
# same with a guest downloading from dom0 over one TCP connection that must
# survive all four moves (qemu-tests/run.sh paper-http, out/rig/paper-http/).
set -euo pipefail
cd "$(dirname "$0")"
. scripts/lib.sh

need_pkgs build-essential libxen-dev
status=0
qemu-tests/run.sh appliance-selftest paper-mmuncher paper-http || status=$?
for s in paper-mmuncher paper-http; do
    dir=out/rig/$s/files
    if [ -s "$dir/$s.md" ]; then
        log "comparison: $dir/$s.md"
        cat "$dir/$s.md"
        echo
    fi
    for f in "$dir"/$s-*.json; do
        [ -s "$f" ] && log "report: $f"
    done
    [ -s "$dir/$s.svg" ] && log "plot: $dir/$s.svg"
done
exit "$status"
