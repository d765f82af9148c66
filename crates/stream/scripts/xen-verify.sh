#!/usr/bin/env bash
# Checks depmig's valid stream fixtures with Xen's own stream verifier
# (tools/python/scripts/verify-stream-v2 of the Xen source tree given as $1):
# what depmig writes must be what Xen reads.
set -euo pipefail
src=${1:?usage: xen-verify.sh XEN_SOURCE_DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
py="$src/tools/python"
[ -f "$py/scripts/verify-stream-v2" ] || { echo "xen-verify: no verify-stream-v2 under $src" >&2; exit 1; }
for f in valid_full valid_minimal; do
    if ! PYTHONPATH="$py" python3 "$py/scripts/verify-stream-v2" -q --format libxc -i "$here/fixtures/$f.bin"; then
        echo "xen-verify: Xen's verify-stream-v2 refused fixtures/$f.bin" >&2
        exit 1
    fi
done
echo "xen-verify: Xen's verify-stream-v2 accepted fixtures/valid_full.bin and valid_minimal.bin"
