# warren's bash driver: one persistent shell that runs cells for a session.
#
# It speaks the cell protocol (docs/cell-protocol.md). The engine starts it as
#   bash --noprofile --norc -c "$DRIVER" bash
# with WARREN_CELL_IN / WARREN_CELL_OUT naming the command and reply pipes.
#
# Each cell runs in this top-level shell, so its variables (`declare` too: inside a function
# they would be local), functions, `cd`, options and exports stay for the next cell. It runs
# as `eval` inside a sourced file, because on SIGINT the only way out of a running cell in
# bash is a DEBUG trap returning 2 under extdebug, which returns from functions and sourced
# files (not from eval). Everything of the driver is named __warren_*; it calls builtins with
# `builtin` (or `command`) so that a cell's functions of the same names cannot capture them.

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
# The session's stderr for the driver's own complaints, and /dev/null for its traces.
command exec {__warren_err}>&2 {__warren_null}>/dev/null

# The file every cell is sourced from: one line that evals the cell's code. Opened once and
# deleted; `source /dev/fd/N` opens it afresh each time, without a pipe or a file per cell.
__warren_tmp_failed() {
  builtin echo "warren bash driver: cannot create a temporary file in ${TMPDIR:-/tmp} (set TMPDIR)" >&2
  exit 2
}
__warren_src=$(command mktemp "${TMPDIR:-/tmp}/warren-bash.XXXXXXXX") || __warren_tmp_failed
# shellcheck disable=SC2016 # the line is for the cells, expanded when each one runs
if ! builtin printf '%s\n' 'builtin eval "$__warren_code"' >"$__warren_src" ||
  ! command exec {__warren_src_fd}<"$__warren_src"; then
  command rm -f -- "$__warren_src"
  __warren_tmp_failed
fi
command rm -f -- "$__warren_src"
builtin unset __warren_src; builtin unset -f __warren_tmp_failed
# A failed `exec CMD` in a cell reports an error instead of ending the session.
builtin shopt -s execfail

__warren_id='' __warren_code='' __warren_busy='' __warren_intr='' __warren_status=''
__warren_debug='' __warren_extdebug='' __warren_errexit='' __warren_header=()
# Two bytes that make one character in UTF-8: bodies are counted in bytes, so reading them
# needs the C locale unless the locale is single-byte already (each switch costs µs).
__warren_probe=$'\xc3\xa9'

# SIGINT while a cell runs: make every further command of the cell return (DEBUG trap status 2
# under extdebug returns from the sourced cell and from any function it called). Idle: ignored.
__warren_int() {
  [[ -n $__warren_busy && -z $__warren_intr ]] || builtin return 0
  __warren_intr=1
  __warren_debug=$(builtin trap -p DEBUG)
  __warren_extdebug=
  builtin shopt -q extdebug && __warren_extdebug=1
  builtin shopt -s extdebug
  # Under `set -e`, the status 2 of each return would end the shell: off until `done`.
  __warren_errexit=''
  if [[ $- == *e* ]]; then
    __warren_errexit=1
    builtin set +e
  fi
  builtin trap '[[ ${FUNCNAME-} == __warren_* || -z ${BASH_SOURCE-} ]] || builtin return 2' DEBUG
}
builtin trap __warren_int INT

# The cell's code: LENGTH bytes after the header (status 1 at end of file).
__warren_body() {
  if ((${#__warren_probe} == 2)); then
    IFS= builtin read -r -N "$1" -u "$__warren_in" __warren_code
  elif [[ -n ${LC_ALL-} ]]; then
    LC_ALL=C IFS= builtin read -r -N "$1" -u "$__warren_in" __warren_code
  else # one locale category instead of all: ~6 µs less
    LC_CTYPE=C IFS= builtin read -r -N "$1" -u "$__warren_in" __warren_code
  fi
}

__warren_bad() {
  builtin echo "warren bash driver: protocol error: bad header: $*" >&"$__warren_err"
  builtin exit 2
}

# A cell that did not end with status 0: interrupted, or an error with its exit status.
__warren_failed() {
  local value
  if [[ -n $__warren_intr ]]; then
    builtin trap - DEBUG
    [[ -n $__warren_debug ]] && builtin eval "$__warren_debug"
    [[ -n $__warren_extdebug ]] || builtin shopt -u extdebug
    [[ -z $__warren_errexit ]] || builtin set -e
    __warren_intr=''
    builtin printf 'done %s error 11 0 11\nInterrupted' "$__warren_id" >&"$__warren_out"
  else
    value="exit status $1"
    builtin printf 'done %s error 10 %d %d\nExitStatus%s' "$__warren_id" \
      "${#value}" "$((10 + ${#value}))" "$value" >&"$__warren_out"
  fi
}

# The loop, written out inline because every command counts (a bash cell's round trip is
# mostly this loop). The driver's commands run with stderr on /dev/null, so that a cell's
# `set -x` traces only the cell (and the `source` line that starts it). The protocol fds are
# closed for the cell, so that its children never hold them. Messages other than `run` are
# skipped, as the protocol says. A cell may `break` or `continue` the loop it runs in: a cell
# still busy when the loop's condition runs again left that way (ok), and after a `break` the
# loop is entered again from its tail.
__warren_loop="
while {
  if [[ -n \$__warren_busy ]]; then
    __warren_busy=
    builtin printf 'done %s ok 0\\n' \"\$__warren_id\" >&$__warren_out
  fi
  while :; do
    IFS=' ' builtin read -r -a __warren_header -u $__warren_in || builtin exit 0
    case \${__warren_header[*]: -1} in
    0) __warren_code= ;;
    '' | *[!0-9]*) __warren_bad \"\${__warren_header[@]}\" ;;
    *) __warren_body \"\${__warren_header[*]: -1}\" || builtin exit 0 ;;
    esac
    case \${__warren_header[0]}:\${#__warren_header[@]} in
    run:3) break ;;
    run:*) __warren_bad \"\${__warren_header[@]}\" ;;
    esac
  done
  __warren_id=\${__warren_header[1]}
  __warren_busy=1
} 2>&$__warren_null; do
  builtin source /dev/fd/$__warren_src_fd $__warren_in<&- $__warren_out>&-
  {
    __warren_status=\$?
    __warren_busy=
    __warren_code=
    if [[ \$__warren_status == 0 && -z \$__warren_intr ]]; then
      builtin printf 'done %s ok 0\\n' \"\$__warren_id\" >&$__warren_out
    else
      __warren_failed \"\$__warren_status\"
    fi
  } 2>&$__warren_null
done
builtin eval \"\$__warren_loop\""

__warren_banner="bash $BASH_VERSION"
builtin printf 'ready 1 %d\n%s' "${#__warren_banner}" "$__warren_banner" >&"$__warren_out"
builtin unset __warren_banner
builtin eval "$__warren_loop"
