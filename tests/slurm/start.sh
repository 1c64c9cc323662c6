#!/usr/bin/env bash
# Starts a private single-node Slurm under DIR, for tests: its own munged (key, socket, pid,
# seed and log in DIR/munge), slurmctld and slurmd in the foreground, with their own
# DIR/slurm.conf, state and spool directories, on free TCP ports of 127.0.0.1. It touches no
# system configuration and no other Slurm. Clients reach it with SLURM_CONF=DIR/slurm.conf.
#
#   tests/slurm/start.sh DIR [--cpus N] [--kill-wait SECONDS]
#
# --cpus N declares the node with N CPUs whatever the machine has (SlurmdParameters=
# config_overrides), so one job can run N tasks on a small machine. --kill-wait is Slurm's
# KillWait: the seconds between SIGTERM and SIGKILL when a job is cancelled or times out
# (default 5; Slurm's own default is 30).
#
# It returns once the node is idle and `srun -N1 -n1 true` works, or fails (after stopping
# whatever it started) within SLURM_TEST_START_TIMEOUT seconds (default 60). The daemons' pids
# are in DIR/munged.pid, DIR/slurmctld.pid and DIR/slurmd.pid; tests/slurm/stop.sh DIR stops
# exactly those. Runs as root (jobs run as their submitter) or as any user (SlurmUser and
# SlurmdUser are that user, and jobs run as that user only).
set -euo pipefail

usage() {
  echo "usage: $0 DIR [--cpus N] [--kill-wait SECONDS]" >&2
  exit 64
}

[ $# -ge 1 ] || usage
DIR=$1
shift
CPUS=
KILL_WAIT=5
while [ $# -gt 0 ]; do
  case $1 in
    --cpus) [ $# -ge 2 ] || usage; CPUS=$2; shift 2 ;;
    --kill-wait) [ $# -ge 2 ] || usage; KILL_WAIT=$2; shift 2 ;;
    *) usage ;;
  esac
done
case $CPUS in '' | *[!0-9]*) [ -z "$CPUS" ] || usage ;; esac
case $KILL_WAIT in '' | *[!0-9]*) usage ;; esac
TIMEOUT=${SLURM_TEST_START_TIMEOUT:-60}
HERE=$(cd "$(dirname "$0")" && pwd)

for tool in munged slurmctld slurmd srun sinfo scontrol; do
  if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
    echo "$0: $tool not found: install Debian's slurmctld slurmd slurm-client munge" >&2
    exit 69
  fi
done
PATH=$PATH:/usr/sbin

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
if [ -e "$DIR/slurm.conf" ]; then
  echo "$0: $DIR already holds a Slurm (stop it with tests/slurm/stop.sh $DIR, or use a new directory)" >&2
  exit 73
fi
# Unix socket paths are limited to 107 bytes; slurmd's step sockets are the longest.
if [ ${#DIR} -gt 60 ]; then
  echo "$0: $DIR is too long for Slurm's sockets: use a directory of at most 60 characters" >&2
  exit 64
fi

USER_NAME=$(id -un)
# munged refuses directories that others can write, and (as root) ones not owned by root.
mkdir -p "$DIR/munge" "$DIR/state" "$DIR/spool" "$DIR/log"
chmod 0700 "$DIR/state" "$DIR/spool" "$DIR/log"
chmod 0755 "$DIR/munge" # munge clients must be able to reach the socket
chmod go-w "$DIR"

# Everything this script started is stopped again if it does not finish.
started=
cleanup() {
  if [ -z "$started" ]; then
    echo "$0: start failed; the logs are in $DIR/log" >&2
    for log in "$DIR"/log/*.log; do
      [ -f "$log" ] && { echo "----- $log" >&2; tail -n 20 "$log" >&2; }
    done
    "$HERE/stop.sh" "$DIR" >&2 || true
  fi
}
trap cleanup EXIT

# A daemon in the foreground, in its own session (a terminal's ^C or hangup doesn't reach it),
# with no descriptor of ours (a caller reading our output would otherwise wait for it).
daemon() {
  local name=$1
  shift
  setsid "$@" </dev/null >>"$DIR/log/$name.log" 2>&1 &
  echo $! >"$DIR/$name.pid"
}

# Fails (and the EXIT trap shows the logs and stops the rest) if a daemon has exited.
alive() {
  local name=$1 pid
  pid=$(cat "$DIR/$name.pid")
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "$0: $name exited during start" >&2
    return 1
  fi
}

START=$(date +%s%N)

# --- munge ---
MUNGE_SOCKET=$DIR/munge/munge.socket
head -c 1024 /dev/urandom >"$DIR/munge/munge.key"
chmod 0400 "$DIR/munge/munge.key"
daemon munged munged --foreground --key-file="$DIR/munge/munge.key" --socket="$MUNGE_SOCKET" \
  --pid-file="$DIR/munge/munged.pid" --seed-file="$DIR/munge/munged.seed" \
  --log-file="$DIR/log/munged.log"
for _ in $(seq 200); do
  [ -S "$MUNGE_SOCKET" ] && break
  alive munged
  sleep 0.05
done
[ -S "$MUNGE_SOCKET" ] || { echo "$0: munged did not create its socket" >&2; exit 1; }

# --- ports: two free ones below the ephemeral range, not listed in /proc/net/tcp{,6} ---
used_ports() {
  local _sl local_address _rest
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | while read -r _sl local_address _rest; do
    case $local_address in *:*) echo $((16#${local_address##*:})) ;; esac
  done
}
free_port() {
  local used port
  used=" $(used_ports | tr '\n' ' ') $* "
  for _ in $(seq 100); do
    port=$((10000 + (RANDOM * 32768 + RANDOM) % 22000))
    case $used in *" $port "*) continue ;; esac
    echo "$port"
    return
  done
  echo "$0: no free port found" >&2
  return 1
}

# --- slurm.conf: the node is this machine, under its own name (slurmctld insists on it) ---
HOST=$(hostname -s 2>/dev/null || uname -n)
HOST=${HOST%%.*}
HW=$(slurmd -C | head -n 1)
REAL_CPUS=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$HW")
MEMORY=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$HW")
CPUS=${CPUS:-$REAL_CPUS}
# The daemons listen on every address unless told to bind to the one this host's name resolves
# to: do that when it is loopback only (Debian maps the name to 127.0.1.1; some clouds to a
# public address, where binding it would keep clients on 127.0.0.1 out).
ADDRS=$(getent ahosts "$(hostname)" 2>/dev/null | awk '{ print $1 }' | sort -u)
COMM_PARAMS="# $(hostname) resolves to ${ADDRS:-nothing}: the daemons listen on every address"
if [ -n "$ADDRS" ] && ! grep -qv '^127\.' <<<"$ADDRS"; then
  COMM_PARAMS="# Listen on loopback ($(hostname) resolves to it), not on every address.
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny"
fi

write_conf() {
  cat >"$DIR/slurm.conf" <<EOF
# A private test Slurm written by tests/slurm/start.sh; stop it with tests/slurm/stop.sh.
ClusterName=warren-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=$USER_NAME
SlurmdUser=$USER_NAME
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.own.pid
SlurmdPidFile=$DIR/slurmd.own.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No cgroups here (they don't work in containers like CI's): Slurm follows a job's processes
# by parent pid.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
$COMM_PARAMS
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
# Schedule a batch job at once, not up to 3 s later (the default batch_sched_delay).
SchedulerParameters=batch_sched_delay=0
SlurmdParameters=config_overrides
PropagateResourceLimits=NONE
ReturnToService=2
KillWait=$KILL_WAIT
InactiveLimit=0
MinJobAge=300
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEMORY State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
}

# --- the daemons; a port taken meanwhile by someone else gets a new pair ---
for attempt in 1 2 3; do
  CTLD_PORT=$(free_port)
  SLURMD_PORT=$(free_port "$CTLD_PORT")
  write_conf
  daemon slurmctld slurmctld -D -i -f "$DIR/slurm.conf"
  daemon slurmd slurmd -D -f "$DIR/slurm.conf" -N "$HOST"
  sleep 0.2
  if alive slurmctld 2>/dev/null && alive slurmd 2>/dev/null; then break; fi
  if grep -qs 'Address already in use' "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" &&
    [ "$attempt" -lt 3 ]; then
    for name in slurmd slurmctld; do
      pid=$(cat "$DIR/$name.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    done
    continue
  fi
  alive slurmctld
  alive slurmd
done

export SLURM_CONF=$DIR/slurm.conf
deadline=$(($(date +%s) + TIMEOUT))
state=
probe=
while :; do
  alive slurmctld
  alive slurmd
  state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
  if [ "$state" = idle ] && [ -z "$probe" ] && timeout 20 srun -N1 -n1 true </dev/null >/dev/null 2>&1; then
    probe=done # job 1; it may still be completing for a moment after srun returns
  fi
  if [ "$state" = idle ] && [ -n "$probe" ] && [ -z "$(squeue -h -o %A 2>/dev/null)" ]; then break; fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "$0: the node did not become idle in ${TIMEOUT}s (state: ${state:-unknown})" >&2
    exit 1
  fi
  sleep 0.1
done
started=1
ELAPSED_MS=$((($(date +%s%N) - START) / 1000000))

cat <<EOF
A private Slurm is up in $DIR (${ELAPSED_MS} ms): node $HOST, $CPUS CPUs, partition debug.
  export SLURM_CONF=$DIR/slurm.conf
  srun -n 2 hostname; sbatch --wrap 'hostname'; squeue; scontrol show node
Stop it with: $HERE/stop.sh $DIR
EOF
