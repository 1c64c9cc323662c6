"""warren's python driver: one persistent interpreter that runs cells for a session.

It speaks the cell protocol (docs/cell-protocol.md): commands arrive on the fd named by
WARREN_CELL_IN, replies leave on the fd named by WARREN_CELL_OUT, and the cells' output goes to
the real fds 1 and 2. The engine starts it as `python3 -c DRIVER`. Standard library only,
Python 3.8+. The driver's own names live in this module's globals; the cells get a fresh
`__main__` module of their own.
"""

import ast
import builtins
import linecache
import os
import signal
import sys
import traceback
import types

PROTOCOL = b"1"
MAX_HEADER = 4096
READ_SIZE = 1 << 16
COMPILED_CELLS = 256
COMPILED_CELL_SIZE = 4096

# The running cell: None while idle (from `done` to the next `run`), else the code objects it
# executes, (None, None) until they start. SIGINT while a cell's code is on the stack raises
# KeyboardInterrupt there; between taking the `run` and starting the code it is kept for the
# start; while idle it is ignored.
_cell = None
_pending = False
_DRIVER_GLOBALS = globals()


def _on_sigint(signum, frame):
    global _pending
    if _cell is None:
        return
    body, expr = _cell
    while frame is not None:
        code = frame.f_code
        if code is body or code is expr:
            raise KeyboardInterrupt
        frame = frame.f_back
    _pending = True


class Pipes:
    """The two protocol fds: read frames from one, write frames to the other."""

    def __init__(self, fd_in, fd_out):
        self.fd_in = fd_in
        self.fd_out = fd_out
        self.buf = bytearray()

    def _fill(self, need):
        """Reads until the buffer holds `need` bytes; False at end of file."""
        while len(self.buf) < need:
            chunk = os.read(self.fd_in, max(READ_SIZE, need - len(self.buf)))
            if not chunk:
                return False
            self.buf += chunk
        return True

    def read(self):
        """The next frame as (header tokens, body bytes), or None at end of file."""
        buf = self.buf
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl >= 0:
                break
            if len(buf) > MAX_HEADER:
                fatal("header longer than %d bytes" % MAX_HEADER)
            start = len(buf)
            if not self._fill(len(buf) + 1):
                if buf:
                    fatal("end of file inside a header")
                return None
        tokens = bytes(buf[:nl]).split(b" ")
        try:
            length = int(tokens[-1])
        except ValueError:
            fatal("bad length in header %r" % bytes(buf[:nl]))
        end = nl + 1 + length
        if not self._fill(end):
            fatal("end of file inside a body")
        body = bytes(buf[nl + 1 : end])
        del buf[:end]
        return tokens, body

    def write(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd_out, view) :]


def fatal(message):
    os.write(2, ("warren python driver: protocol error: %s\n" % message).encode())
    os._exit(2)


def _flush_c_stdio():
    """Returns a function flushing C's stdio buffers (output printf'd by C extensions)."""
    try:
        import ctypes

        fflush = ctypes.CDLL(None).fflush
        fflush.argtypes = [ctypes.c_void_p]
        return lambda: fflush(None)
    except Exception:
        return lambda: None


def _text(obj, fn):
    try:
        return fn(obj)
    except BaseException:
        return "<unprintable %s object>" % type(obj).__name__


def _cell_frames(tb):
    """The traceback without the driver's frames (its exec call, its SIGINT handler)."""
    kept = []
    while tb is not None:
        if tb.tb_frame.f_globals is not _DRIVER_GLOBALS:
            kept.append(tb)
        tb = tb.tb_next
    tb = None
    for t in reversed(kept):
        tb = types.TracebackType(tb, t.tb_frame, t.tb_lasti, t.tb_lineno)
    return tb


def _remember(text, filename):
    """Puts a cell's source where tracebacks look for the lines they show."""
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)


def _has_nested_code(code):
    return code is not None and any(isinstance(c, types.CodeType) for c in code.co_consts)


def _compile(text, filename):
    """The cell's statements and its last expression, compiled apart (like IPython)."""
    tree = ast.parse(text, filename, "exec")
    body = expr = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        expr = compile(ast.Expression(tree.body.pop().value), filename, "eval")
    if tree.body:
        body = compile(tree, filename, "exec")
    return body, expr


class Driver:
    def __init__(self, pipes):
        self.pipes = pipes
        main = types.ModuleType("__main__")
        main.__dict__["__builtins__"] = builtins
        self.main = main
        self.ns = main.__dict__
        self.flush_c = _flush_c_stdio()
        # Code of recent small cells without functions or classes, by source: the same cell
        # sent again (a loop of `%px` calls) skips the compiler, most of a small cell's cost.
        self.compiled = {}

    def flush(self):
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()  # twice for the same stream is harmless; None raises, ignored
            except Exception:
                pass
        self.flush_c()

    def compile(self, source, filename):
        """Returns (text, body, expr, nested)."""
        cached = self.compiled.get(source)
        if cached is not None:
            text, body, expr = cached
            if body is not None:
                body = body.replace(co_filename=filename)
            if expr is not None:
                expr = expr.replace(co_filename=filename)
            return text, body, expr, False
        text = source.decode("utf-8")
        body, expr = _compile(text, filename)
        nested = _has_nested_code(body) or _has_nested_code(expr)
        if not nested and len(source) <= COMPILED_CELL_SIZE:
            if len(self.compiled) >= COMPILED_CELLS:
                self.compiled.clear()
            self.compiled[source] = (text, body, expr)
        return text, body, expr, nested

    def run(self, cell_id, source):
        """Runs one cell; returns the `done` frame to send."""
        global _cell
        filename = "<cell %s>" % cell_id.decode("ascii", "replace")
        try:
            text, body, expr, nested = self.compile(source, filename)
        except BaseException as e:
            return self.error(cell_id, e, traceback.format_exception_only(type(e), e))
        # The cell's source, for tracebacks: kept while its functions may need it.
        if nested:
            _remember(text, filename)
        value = None
        try:
            _cell = (body, expr)
            if _pending:
                raise KeyboardInterrupt  # arrived before the cell's code started
            if body is not None:
                exec(body, self.ns)
            if expr is not None:
                value = eval(expr, self.ns)
            _cell = (None, None)
            if value is not None:
                builtins._ = value
                value = _text(value, repr).encode("utf-8", "backslashreplace")
        except BaseException as e:
            _cell = (None, None)
            _remember(text, filename)
            tb = _cell_frames(e.__traceback__)
            lines = traceback.format_exception(type(e), e, tb)
            if not nested:
                linecache.cache.pop(filename, None)
            return self.error(cell_id, e, lines)
        if value is None:
            return b"done %s ok 0\n" % cell_id
        return b"done %s ok %d\n%s" % (cell_id, len(value), value)

    def error(self, cell_id, e, lines):
        name = type(e).__name__.encode("utf-8", "backslashreplace")
        value = _text(e, str).encode("utf-8", "backslashreplace")
        tb = "".join(lines).encode("utf-8", "backslashreplace")
        total = len(name) + len(value) + len(tb)
        return b"done %s error %d %d %d\n%s%s%s" % (
            cell_id,
            len(name),
            len(value),
            total,
            name,
            value,
            tb,
        )

    def serve(self):
        global _cell, _pending
        version = sys.version.split("\n")[0].encode("utf-8", "replace")
        banner = b"Python " + version
        self.pipes.write(b"ready %s %d\n%s" % (PROTOCOL, len(banner), banner))
        read, write, run, flush = self.pipes.read, self.pipes.write, self.run, self.flush
        while True:
            frame = read()
            if frame is None:
                return
            tokens, body = frame
            if tokens[0] != b"run":
                continue  # unknown message: skipped, as the protocol says
            if len(tokens) != 3:
                fatal("bad run header %r" % b" ".join(tokens))
            _pending = False
            _cell = (None, None)
            reply = run(tokens[1], body)
            flush()
            _cell = None
            write(reply)


def main():
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        fd_in = int(os.environ.pop("WARREN_CELL_IN"))
        fd_out = int(os.environ.pop("WARREN_CELL_OUT"))
        os.environ.pop("WARREN_CELL_PROTOCOL", None)
        os.set_inheritable(fd_in, False)
        os.set_inheritable(fd_out, False)
    except (KeyError, ValueError, OSError) as e:
        sys.stderr.write(
            "warren python driver: WARREN_CELL_IN and WARREN_CELL_OUT must name the open fds "
            "of the cell protocol (%s: %s)\n" % (type(e).__name__, e)
        )
        sys.exit(2)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)
        except Exception:
            pass
    if sys.argv and sys.argv[0] == "-c":
        sys.argv[0] = ""
    driver = Driver(Pipes(fd_in, fd_out))
    sys.modules["__main__"] = driver.main
    try:
        driver.serve()
    except BrokenPipeError:
        pass  # the engine is gone


if __name__ == "__main__":
    main()
