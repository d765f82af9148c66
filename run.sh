#!/usr/bin/env bash
# depmig's main job on a fresh or warm machine: builds the nested-Xen rig and
# runs, in it, the appliance as a Xen PVH service domain and the stock
# `xl migrate` baseline of the 100 MiB memory-dirtier guest, printing the
# per-round report. (depmig's own migration replaces the baseline here once
# the appliances' migration roles land.)
set -euo pipefail
cd "$(dirname "$0")"
. scripts/lib.sh

need_pkgs build-essential libxen-dev
status=0
qemu-tests/run.sh appliance-selftest baseline-mmuncher || status=$?
report=out/rig/baseline-mmuncher/report.jsonl
if [ -s "$report" ]; then
    log "stock xl migrate per-round report: $report"
    tail -n 1 "$report"
fi
exit "$status"
