#!/usr/bin/env bash
# depmig's main job on a fresh or warm machine: installs what is missing,
# builds the appliance and boots it, printing its self-test verdict.
# (The live migration in the nested rig, with its report, replaces this as the
# migration roles land.)
set -euo pipefail
cd "$(dirname "$0")"
. scripts/lib.sh

need_pkgs build-essential libxen-dev
qemu-tests/image/run.sh
