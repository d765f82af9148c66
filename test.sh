#!/usr/bin/env bash
# Runs every depmig test on a fresh or warm machine: installs what is missing,
# builds, runs the host tests, then the image and rig scenarios. Exits non-zero
# when any test fails.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/lib.sh

need_pkgs build-essential
# clang: the guest-abi crate also compiles guest-lsm's table.h for the BPF
# target against its layouts (the guest-lsm tests below need it anyway).
need_pkgs clang
# Xen's public headers: the ABI crates' tests check their layouts against them.
need_pkgs libxen-dev

# The rig's Xen 4.20 source: xen-abi also holds its layouts against 4.20's
# public headers (its test says SKIPPED for a release without headers).
. qemu-tests/lib.sh
if [ "$DEPMIG_XEN" = 4.20 ]; then
    DEPMIG_XEN420_INCLUDE="$(xen_source_dir)/xen/include"
    export DEPMIG_XEN420_INCLUDE
fi

log "host tests: cargo test --workspace"
cargo test --workspace --locked

log "fuzz: the committed seeds are current, then afl.rs on every target, 30 s each (fuzz/README.md)"
cargo test --manifest-path fuzz/Cargo.toml --lib --locked
fuzz/run.sh 30

log "stream: Xen's own verify-stream-v2 reads depmig's stream fixtures"
need_pkgs python3
crates/stream/scripts/xen-verify.sh "$(fetch_source xen)"

log "image: boots under plain QEMU (qemu-tests/image/run.sh)"
qemu-tests/image/run.sh

log "guest: the rig's guest kernel, initramfs and workloads under plain QEMU"
qemu-tests/guest/test-qemu.sh

log "guest-lsm: taint tracker in a booted guest (guest-lsm/tests/run.sh), Debian 12's 6.1 and 13's 6.12"
guest-lsm/tests/run.sh
guest-lsm/tests/run.sh trixie

log "walker: the Linux walker over a real guest's RAM (crates/walker/scripts/real-guest.sh)"
crates/walker/scripts/real-guest.sh

log "rig: Xen $DEPMIG_XEN + FLASK nested in QEMU, default scenarios (qemu-tests/run.sh)"
qemu-tests/run.sh
