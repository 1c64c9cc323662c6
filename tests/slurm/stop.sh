#!/usr/bin/env bash
# Stops the private Slurm that tests/slurm/start.sh started under DIR, and nothing else:
#
#   tests/slurm/stop.sh DIR
#
# First its jobs are cancelled (so their tasks get SIGTERM, then SIGKILL after KillWait, from
# Slurm itself). Then slurmd, slurmctld and munged, each by the pid recorded in DIR (and only
# if that process still runs with DIR on its command line, so a reused pid is left alone),
# get SIGTERM, then SIGKILL after SLURM_TEST_STOP_WAIT seconds (default 10). Last, any job
# process that outlived them (it carries this Slurm's SLURM_CONF and a SLURM_JOB_ID) is
# killed too. Safe to run twice, or after a failed start. DIR itself (logs) is left in place.
set -uo pipefail

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 64; }
DIR=$(cd "$1" 2>/dev/null && pwd) || { echo "$0: no directory $1" >&2; exit 66; }
WAIT=${SLURM_TEST_STOP_WAIT:-10}
PATH=$PATH:/usr/sbin
CONF=$DIR/slurm.conf

# The pid in DIR/NAME.pid, if that process is still the one started for DIR.
ours() {
  local pid
  pid=$(cat "$DIR/$1.pid" 2>/dev/null) || return 1
  case $pid in '' | *[!0-9]*) return 1 ;; esac
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$DIR/" || return 1
  echo "$pid"
}

# terminate SECONDS PID...: SIGTERM, then SIGKILL for those still there SECONDS later.
terminate() {
  local wait=$1
  shift
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null
  local left=$((wait * 20)) pid alive
  while [ $left -gt 0 ]; do
    alive=
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && return 0
    sleep 0.05
    left=$((left - 1))
  done
  for pid in "$@"; do
    if kill -0 "$pid" 2>/dev/null; then
      echo "$0: pid $pid ignored SIGTERM for ${wait}s: SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null
    fi
  done
}

# 1. Cancel the jobs while the controller and slurmd can still end them properly.
if ours slurmctld >/dev/null && ours slurmd >/dev/null && [ -f "$CONF" ]; then
  export SLURM_CONF=$CONF
  jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    # shellcheck disable=SC2086 # one argument per job id
    timeout 10 scancel $jobs 2>/dev/null
    kill_wait=$(sed -n 's/^KillWait=//p' "$CONF")
    left=$(((${kill_wait:-30} + 10) * 10))
    while [ $left -gt 0 ] && [ -n "$(timeout 10 squeue -h -o %A 2>/dev/null)" ]; do
      sleep 0.1
      left=$((left - 1))
    done
  fi
  unset SLURM_CONF
fi

# 2. The daemons, all at once (each takes 1-2 s to exit), with slurmctld's helper
# (slurmscriptd, its child), which exits with it unless slurmctld is killed.
pids=()
for name in slurmd slurmctld munged; do
  pid=$(ours "$name") && pids+=("$pid")
done
helpers=()
if ctld=$(ours slurmctld); then
  for status in /proc/[0-9]*/status; do
    if [ "$(awk '/^PPid:/ { print $2 }' "$status" 2>/dev/null)" = "$ctld" ]; then
      pid=${status#/proc/}
      helpers+=("${pid%/status}")
    fi
  done
fi
terminate "$WAIT" "${pids[@]}"
for pid in "${helpers[@]}"; do
  kill -0 "$pid" 2>/dev/null && terminate "$WAIT" "$pid"
done

# 3. Job processes that outlived their slurmstepd: this Slurm's SLURM_CONF and a job id in
# their environment. proctrack/linuxproc follows a job by parent pid, so a process whose parent
# died on SIGTERM (a child of a batch script, say) is reparented and escapes Slurm's SIGKILL.
# They had their SIGTERM from Slurm already: SIGKILL after 2 s. Our own ancestors are spared
# (a shell may have exported SLURM_CONF).
ancestors=" "
p=$$
while [ "$p" -gt 1 ] 2>/dev/null; do
  ancestors+="$p "
  p=$(awk '/^PPid:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || break
done
strays=()
for environ in /proc/[0-9]*/environ; do
  pid=${environ#/proc/}
  pid=${pid%/environ}
  case $ancestors in *" $pid "*) continue ;; esac
  if grep -qzxF "SLURM_CONF=$CONF" "$environ" 2>/dev/null &&
    grep -qz '^SLURM_JOB_ID=' "$environ" 2>/dev/null; then
    strays+=("$pid")
  fi
done
if [ ${#strays[@]} -gt 0 ]; then
  echo "$0: job processes outlived Slurm: ${strays[*]}" >&2
  terminate 2 "${strays[@]}"
fi

rm -f "$DIR/munge/munge.socket" "$DIR/munge/munge.socket.lock"
exit 0
