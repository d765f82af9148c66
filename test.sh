#!/usr/bin/env bash
# Runs every depmig test on a fresh or warm machine: installs what is missing,
# builds, runs the host tests, then the image and rig scenarios. Exits non-zero
# when any test fails.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/lib.sh

need_pkgs build-essential
# Xen's public headers: the ABI crates' tests check their layouts against them.
need_pkgs libxen-dev

log "host tests: cargo test --workspace"
cargo test --workspace --locked

log "stream: Xen's own verify-stream-v2 reads depmig's stream fixtures"
need_pkgs python3
crates/stream/scripts/xen-verify.sh "$(fetch_source xen)"

log "image: boots under plain QEMU (qemu-tests/image/run.sh)"
qemu-tests/image/run.sh

log "guest: the rig's guest kernel, initramfs and workloads under plain QEMU"
qemu-tests/guest/test-qemu.sh

log "guest-lsm: taint tracker in a booted guest (guest-lsm/tests/run.sh)"
guest-lsm/tests/run.sh

log "walker: the Linux walker over a real guest's RAM (crates/walker/scripts/real-guest.sh)"
crates/walker/scripts/real-guest.sh

log "rig: Xen 4.17 + FLASK nested in QEMU, default scenarios (qemu-tests/run.sh)"
qemu-tests/run.sh
