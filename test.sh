#!/usr/bin/env bash
# Runs every depmig test on a fresh or warm machine: installs what is missing,
# builds, runs the host tests, then the image and rig scenarios. Exits non-zero
# when any test fails.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/lib.sh

need_pkgs build-essential

log "host tests: cargo test --workspace"
cargo test --workspace --locked
