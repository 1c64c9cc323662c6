#!/usr/bin/env bash
# IPython parallel 9 on warren-bench's scenarios, in a throwaway venv that is removed after.
# Usage: bash tests/ipyparallel/run.sh [results.json]   (QUICK=1 for fewer runs)
set -euo pipefail
out="$(realpath -m "${1:-ipyparallel-results.json}")"
here="$(cd "$(dirname "$0")" && pwd)"
venv="$(mktemp -d -t warren-ipp-venv.XXXXXX)"
# bench.py writes here the pid of each controller and engine it starts: each leads a process
# group of its own (ipyparallel starts them with start_new_session).
export IPP_BENCH_PIDS="$venv/cluster.pids"
ours() {
  # Still a process of this venv's python (not a reused pid)?
  { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null | grep -qF "$venv/bin/"
}
cleanup() {
  # What the cluster left if bench.py did not stop it (killed, failed): exactly the process
  # groups it recorded, by pid, TERM then KILL. Then the venv.
  if [ -s "$IPP_BENCH_PIDS" ]; then
    for signal in TERM KILL; do
      while read -r pid; do
        if ours "$pid"; then kill "-$signal" -- "-$pid" 2>/dev/null || true; fi
      done <"$IPP_BENCH_PIDS"
      for _ in $(seq 50); do
        alive=0
        while read -r pid; do if ours "$pid"; then alive=1; fi; done <"$IPP_BENCH_PIDS"
        [ "$alive" = 0 ] && break
        sleep 0.1
      done
    done
  fi
  rm -rf "$venv"
}
trap cleanup EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "ipyparallel>=9,<10"
timeout 1800 "$venv/bin/python" "$here/bench.py" "$out"
