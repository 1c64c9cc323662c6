#!/usr/bin/env bash
# IPython parallel 9 on warren-bench's scenarios, in a throwaway venv that is removed after.
# Usage: bash tests/ipyparallel/run.sh [results.json]   (QUICK=1 for fewer runs)
set -euo pipefail
out="$(realpath -m "${1:-ipyparallel-results.json}")"
here="$(cd "$(dirname "$0")" && pwd)"
venv="$(mktemp -d -t warren-ipp-venv.XXXXXX)"
cleanup() {
  # Whatever the cluster left (on failure), then the venv.
  pkill -f "$venv/bin/" 2>/dev/null || true
  rm -rf "$venv"
}
trap cleanup EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "ipyparallel>=9,<10"
timeout 1800 "$venv/bin/python" "$here/bench.py" "$out"
