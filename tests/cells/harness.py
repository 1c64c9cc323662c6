"""Plays the engine's side of the cell protocol (docs/cell-protocol.md) through real pipes.

A `Session` starts an interpreter in its own process group with the command and reply pipes
named by WARREN_CELL_IN / WARREN_CELL_OUT, reads its stdout and stderr all the time, and ends
a cell the way the engine does: on `done`, drain fds 1 and 2 until they would block. Every wait
is bounded by a deadline. Standard library only.
"""

import os
import selectors
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVERS = os.path.join(ROOT, "engine", "src", "drivers")
TIMEOUT = 60.0


# As warren-engine does when it starts: the tests may run under `nohup` or `cmd &` in a
# script, which ignore SIGHUP, SIGINT and SIGQUIT, and an ignore is inherited through exec,
# so an interpreter started here could not be interrupted.
for _number in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
    if signal.getsignal(_number) == signal.SIG_IGN:
        signal.signal(_number, signal.SIG_DFL)


def python_argv():
    """How the engine starts the python driver: the driver's code on the command line.

    WARREN_TEST_PYTHON picks the interpreter (e.g. a 3.8 to check the oldest supported)."""
    with open(os.path.join(DRIVERS, "python.py")) as f:
        return [os.environ.get("WARREN_TEST_PYTHON", sys.executable), "-c", f.read()]


def bash_argv():
    """How the engine starts the bash driver."""
    with open(os.path.join(DRIVERS, "bash.sh")) as f:
        return ["bash", "--noprofile", "--norc", "-c", f.read(), "bash"]


class ProtocolError(Exception):
    pass


class Cell:
    """One cell as the engine sees it: its output, then its `done` (or the session's death)."""

    def __init__(self, cell_id):
        self.id = cell_id
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.status = None  # "ok", "error" or "lost"
        self.value = None  # ok: the repr as text, or None
        self.name = self.error_value = self.traceback = None  # error
        self.exit = None  # lost: the interpreter's returncode (negative for a signal)

    def __repr__(self):
        return "Cell(%s %s value=%r name=%r error=%r out=%d err=%d)" % (
            self.id,
            self.status,
            self.value,
            self.name,
            self.error_value,
            len(self.stdout),
            len(self.stderr),
        )


class Session:
    """An interpreter speaking the cell protocol, started and driven like the engine will."""

    def __init__(self, argv, env=None, cwd=None, stdin=subprocess.DEVNULL):
        cmd_r, self.cmd_w = os.pipe()
        self.reply_r, reply_w = os.pipe()
        child_env = dict(os.environ if env is None else env)
        # The drivers must flush what they buffer: test them with Python's default buffering.
        child_env.pop("PYTHONUNBUFFERED", None)
        child_env.update(
            WARREN_CELL_IN=str(cmd_r), WARREN_CELL_OUT=str(reply_w), WARREN_CELL_PROTOCOL="1"
        )
        self.proc = subprocess.Popen(
            argv,
            env=child_env,
            cwd=cwd,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(cmd_r, reply_w),
            preexec_fn=os.setpgrp,
        )
        os.close(cmd_r)
        os.close(reply_w)
        self.out_fd = self.proc.stdout.fileno()
        self.err_fd = self.proc.stderr.fileno()
        for fd in (self.out_fd, self.err_fd, self.reply_r):
            os.set_blocking(fd, False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.reply_r, selectors.EVENT_READ)
        self.sel.register(self.out_fd, selectors.EVENT_READ)
        self.sel.register(self.err_fd, selectors.EVENT_READ)
        self.reply_buf = bytearray()
        self.sink = self.orphan = Cell("-")  # output while no cell runs
        self.current = None
        self.next_id = 1
        self.banner = None
        self.dead = False
        self._pump_until(lambda: self.banner is not None or self.dead, TIMEOUT)
        if self.banner is None:
            self.__exit__(None, None, None)
            raise ProtocolError(
                "no ready: exit %r, stderr %r"
                % (self.proc.returncode, bytes(self.orphan.stderr[-2000:]))
            )

    # --- the engine's calls ---

    def submit(self, code, cell_id=None):
        """Sends `run`; the cell is then running."""
        assert self.current is None, "one cell at a time"
        if cell_id is None:
            cell_id = str(self.next_id)
            self.next_id += 1
        body = code.encode() if isinstance(code, str) else code
        self.current = self.sink = Cell(cell_id)
        frame = b"run %s %d\n" % (cell_id.encode(), len(body)) + body
        view = memoryview(frame)
        deadline = time.monotonic() + TIMEOUT
        while view:  # the body may be larger than the pipe: keep reading output meanwhile
            try:
                view = view[os.write(self.cmd_w, view) :]
            except BlockingIOError:
                self._pump(0.05)
            if time.monotonic() > deadline:
                raise TimeoutError("could not send the cell")
        return self.current

    def wait(self, timeout=TIMEOUT):
        """Waits for the running cell's `done` (or the interpreter's death) and returns it."""
        cell = self.current
        self._pump_until(lambda: cell.status is not None, timeout)
        if cell.status is None:
            raise TimeoutError("cell %s did not finish in %.0f s" % (cell.id, timeout))
        return cell

    def run(self, code, timeout=TIMEOUT):
        self.submit(code)
        return self.wait(timeout)

    def wait_output(self, marker, timeout=TIMEOUT):
        """Waits until the running cell's stdout contains `marker`."""
        cell = self.current
        self._pump_until(lambda: marker in cell.stdout or cell.status is not None, timeout)
        if marker not in cell.stdout:
            raise TimeoutError("no %r in the output of cell %s: %r" % (marker, cell.id, cell))

    def send_raw(self, data):
        """Writes bytes to the command pipe as they are (for malformed or unknown messages)."""
        os.write(self.cmd_w, data)

    def wait_exit(self, timeout=TIMEOUT):
        """Waits for end of file on the reply pipe (the interpreter's death); its returncode."""
        self._pump_until(lambda: self.dead, timeout)
        if not self.dead:
            raise TimeoutError("the interpreter did not exit")
        return self.proc.returncode

    def interrupt(self):
        os.killpg(self.proc.pid, signal.SIGINT)

    def close(self, timeout=10.0):
        """Closes the command pipe (end of file) and returns the exit status, killing if need be."""
        if self.cmd_w is not None:
            os.close(self.cmd_w)
            self.cmd_w = None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.wait(timeout)

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        self.proc.wait()
        if self.cmd_w is not None:
            os.close(self.cmd_w)
        os.close(self.reply_r)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.stdout.close()
        self.proc.stderr.close()
        self.sel.close()

    # --- the engine's loop ---

    def _pump_until(self, cond, timeout):
        deadline = time.monotonic() + timeout
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._pump(min(left, 1.0))

    def _pump(self, timeout):
        for key, _ in self.sel.select(timeout):
            if key.fd == self.reply_r:
                self._read_replies()
            else:
                self._read_output(key.fd)

    def _read_output(self, fd):
        """Reads fd until it would block (or ends); returns False at end of file."""
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                return True
            if not chunk:
                if fd in self.sel.get_map():
                    self.sel.unregister(fd)
                return False
            (self.sink.stdout if fd == self.out_fd else self.sink.stderr).extend(chunk)

    def _drain(self):
        for fd in (self.out_fd, self.err_fd):
            if fd in self.sel.get_map():
                self._read_output(fd)

    def _read_replies(self):
        try:
            chunk = os.read(self.reply_r, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            self._died()
            return
        self.reply_buf.extend(chunk)
        while True:
            nl = self.reply_buf.find(b"\n")
            if nl < 0:
                if len(self.reply_buf) > 4096:
                    raise ProtocolError("header longer than 4096 bytes")
                return
            tokens = bytes(self.reply_buf[:nl]).decode("ascii").split(" ")
            length = int(tokens[-1])
            if len(self.reply_buf) < nl + 1 + length:
                return
            body = bytes(self.reply_buf[nl + 1 : nl + 1 + length])
            del self.reply_buf[: nl + 1 + length]
            self._on_frame(tokens, body)

    def _on_frame(self, tokens, body):
        kind = tokens[0]
        if kind == "ready":
            if self.banner is not None or tokens[1] != "1" or len(tokens) != 3:
                raise ProtocolError("bad ready: %r" % tokens)
            self.banner = body.decode("utf-8", "replace")
        elif kind == "done":
            cell = self.current
            if cell is None or tokens[1] != cell.id:
                raise ProtocolError("done for %r while %r runs" % (tokens[1], cell))
            if tokens[2] == "ok" and len(tokens) == 4:
                cell.value = body.decode("utf-8", "replace") if body else None
            elif tokens[2] == "error" and len(tokens) == 6:
                n, v = int(tokens[3]), int(tokens[4])
                cell.name = body[:n].decode("utf-8", "replace")
                cell.error_value = body[n : n + v].decode("utf-8", "replace")
                cell.traceback = body[n + v :].decode("utf-8", "replace")
            else:
                raise ProtocolError("bad done: %r" % tokens)
            self._drain()  # every byte written before done belongs to this cell
            cell.status = tokens[2]
            self.current = None
            self.sink = self.orphan
        # any other type: skipped, as the protocol says

    def _died(self):
        """End of file on the reply pipe: the interpreter is gone (wait for its status)."""
        self.sel.unregister(self.reply_r)
        self.dead = True
        try:
            self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            raise ProtocolError("reply pipe closed but the interpreter lives on") from None
        self._drain()
        if self.current is not None:
            self.current.status = "lost"
            self.current.exit = self.proc.returncode
            self.current = None
            self.sink = self.orphan
