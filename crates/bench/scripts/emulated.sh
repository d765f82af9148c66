#!/usr/bin/env bash
# depmig-bench under QEMU's user-mode emulation of the rig's CPU model
# (qemu-x86_64 -cpu qemu64): figures closer to what the appliances get in
# the rig, where they run under the same emulation. Arguments go to
# depmig-bench (e.g. --quick, or --pages FILE).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
. "$root/scripts/lib.sh"
need_pkgs qemu-user
cd "$root"
cargo build --release --locked -q -p depmig-bench
bin="${CARGO_TARGET_DIR:-$root/target}/release/depmig-bench"
echo "depmig-bench under qemu-x86_64 -cpu qemu64 ($(qemu-x86_64 --version | head -n 1))"
exec qemu-x86_64 -cpu qemu64 "$bin" "$@"
