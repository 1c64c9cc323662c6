# warren's bash driver: one persistent shell that runs cells for a session.
#
# It speaks the cell protocol (docs/cell-protocol.md). The engine starts it as
#   bash --noprofile --norc -c "$DRIVER" bash
# with WARREN_CELL_IN / WARREN_CELL_OUT naming the command and reply pipes.
#
# Each cell is sourced in this top-level shell, so its variables (`declare` too: a function
# would make them local), functions, `cd`, options and exports stay for the next cell.
# Sourcing, not eval, because on SIGINT the only way to leave a running cell in bash is a
# DEBUG trap returning 2 under extdebug, which returns from functions and sourced files.
# Everything of the driver is named __warren_*; its commands run with `builtin` (or `command`)
# so that a cell's functions of the same names cannot capture them.

if [[ -z ${WARREN_CELL_IN-} || -z ${WARREN_CELL_OUT-} ]]; then
  builtin echo "warren bash driver: WARREN_CELL_IN and WARREN_CELL_OUT must name the open fds of the cell protocol" >&2
  exit 2
fi
# Above 9, out of the way of the cells' own `exec 3>file`; the originals are closed.
if ! command exec {__warren_in}<&"$WARREN_CELL_IN" {__warren_out}>&"$WARREN_CELL_OUT"; then
  builtin echo "warren bash driver: fds $WARREN_CELL_IN and $WARREN_CELL_OUT are not open" >&2
  exit 2
fi
command exec {WARREN_CELL_IN}<&- {WARREN_CELL_OUT}>&-
builtin unset WARREN_CELL_IN WARREN_CELL_OUT WARREN_CELL_PROTOCOL
# A failed `exec CMD` in a cell reports an error instead of ending the session.
builtin shopt -s execfail

__warren_id= __warren_code= __warren_fd= __warren_busy= __warren_intr=
__warren_debug= __warren_extdebug=

# SIGINT while a cell runs: make every further command of the cell return (DEBUG trap status 2
# under extdebug returns from the sourced cell and from any function it called). Idle: ignored.
__warren_int() {
  [[ -n $__warren_busy && -z $__warren_intr ]] || builtin return 0
  __warren_intr=1
  __warren_debug=$(builtin trap -p DEBUG)
  __warren_extdebug=
  builtin shopt -q extdebug && __warren_extdebug=1
  builtin shopt -s extdebug
  builtin trap '[[ ${FUNCNAME-} == __warren_* || -z ${BASH_SOURCE-} ]] || builtin return 2' DEBUG
}
builtin trap __warren_int INT

# Reads one `run` frame into __warren_id and a here-string fd for `source`; status 1 at end of
# file. Messages of other types are skipped, as the protocol says.
__warren_read() {
  local -a header
  while :; do
    IFS=' ' builtin read -r -a header -u "$__warren_in" || builtin return 1
    local len=${header[${#header[@]}-1]-}
    if [[ ! $len =~ ^[0-9]+$ ]]; then
      builtin echo "warren bash driver: protocol error: bad header: ${header[*]}" >&2
      builtin exit 2
    fi
    __warren_code=
    if ((len > 0)); then
      LC_ALL=C IFS= builtin read -r -N "$len" -u "$__warren_in" __warren_code || builtin return 1
    fi
    [[ ${header[0]} == run && ${#header[@]} == 3 ]] && break
  done
  __warren_id=${header[1]}
  command exec {__warren_fd}<<<"$__warren_code"
  __warren_code=
  __warren_busy=1
}

# Sends the running cell's `done`, from its status (or its interruption).
__warren_done() {
  local status=$1 value
  __warren_busy=
  if [[ -n $__warren_intr ]]; then
    builtin trap - DEBUG
    [[ -n $__warren_debug ]] && builtin eval "$__warren_debug"
    [[ -n $__warren_extdebug ]] || builtin shopt -u extdebug
    __warren_intr=
    builtin printf 'done %s error 11 0 11\nInterrupted' "$__warren_id" >&"$__warren_out"
  elif ((status == 0)); then
    builtin printf 'done %s ok 0\n' "$__warren_id" >&"$__warren_out"
  else
    value="exit status $status"
    builtin printf 'done %s error 10 %d %d\nExitStatus%s' "$__warren_id" \
      "${#value}" "$((10 + ${#value}))" "$value" >&"$__warren_out"
  fi
  command exec {__warren_fd}<&-
}

# The loop, with the protocol fds closed for the cell (so its children never hold them).
# A cell may `break` or `continue` the loop it is sourced from: a cell still busy at the top
# of the loop left that way, and after a `break` the loop is entered again from its tail.
__warren_loop="
while :; do
  [[ -n \$__warren_busy ]] && __warren_done 0
  __warren_read || builtin exit 0
  builtin source /dev/fd/\$__warren_fd $__warren_in<&- $__warren_out>&-
  __warren_done \$?
done
[[ -n \$__warren_busy ]] && __warren_done 0
builtin eval \"\$__warren_loop\""

__warren_banner="bash $BASH_VERSION"
builtin printf 'ready 1 %d\n%s' "${#__warren_banner}" "$__warren_banner" >&"$__warren_out"
builtin unset __warren_banner
builtin eval "$__warren_loop"
