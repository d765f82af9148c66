#!/usr/bin/env bash
# Host-side preparation of the migration scenarios (their .prep hooks call
# it): everything qemu-tests/guest/prep.sh stages (guest, workloads, migpipe,
# baseline helpers), plus
#   DEST/depmig-appliance   the stripped appliance image
#   DEST/bin/depmig         the dom0 CLI, linked statically
#   DEST/migrate.sh         dom0-side helpers of these scenarios
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/scripts/lib.sh"
dest=${1:?usage: prep.sh DEST}
"$root/qemu-tests/guest/prep.sh" "$dest"
cd "$root"
cargo build --release --locked -p depmig-appliance
strip -o "$dest/depmig-appliance" "${CARGO_TARGET_DIR:-target}/release/depmig-appliance"
# dom0's userland is not the host's: link the CLI statically (an explicit
# --target keeps the flag away from build scripts), as the workloads are.
# One target directory per checkout: cargo's fingerprints of path crates
# name their sources by absolute path, so a second checkout sharing the
# directory could take the first one's artifacts for fresh.
tdir="${DEPMIG_CACHE:-/var/cache/depmig}/cli-target/$(printf '%s' "$root" | sha256sum | cut -c1-12)"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked -p depmig-cli \
    --target x86_64-unknown-linux-gnu --target-dir "$tdir"
strip -o "$dest/bin/depmig" "$tdir/x86_64-unknown-linux-gnu/release/depmig"
cp "$here/migrate.sh" "$dest/migrate.sh"
