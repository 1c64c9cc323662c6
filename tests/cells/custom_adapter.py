#!/usr/bin/env python3
"""A `custom` session written from docs/cell-protocol.md alone: a tiny stack calculator.

A cell is words separated by whitespace:
  123       push a number              + - * /   arithmetic on the top two
  =NAME     pop into a variable        NAME      push a variable
  .         pop and print to stdout    spin      print `started`, loop until interrupted
The cell's value is the top of the stack, if any; the stack is emptied after each cell,
variables stay. Errors: StackUnderflow, UnknownWord, ZeroDivision, Interrupted.
"""

import os
import signal
import sys
import time

interrupted = False


def on_sigint(signum, frame):
    global interrupted
    interrupted = True  # acted on only while a cell runs; the flag is cleared before each cell


class CellError(Exception):
    def __init__(self, name, value, where):
        self.name, self.value, self.where = name, value, where


def run(code, variables):
    stack = []

    def pop(word, i):
        if not stack:
            raise CellError("StackUnderflow", "%s needs more numbers" % word, i)
        return stack.pop()

    words = code.split()
    for i, word in enumerate(words):
        if interrupted:
            raise CellError("Interrupted", "", i)
        if word.lstrip("-").isdigit():
            stack.append(int(word))
        elif word in ("+", "-", "*", "/"):
            b, a = pop(word, i), pop(word, i)
            if word == "/" and b == 0:
                raise CellError("ZeroDivision", "division by zero", i)
            stack.append({"+": a + b, "-": a - b, "*": a * b, "/": a // b}[word])
        elif word == ".":
            sys.stdout.write("%d\n" % pop(word, i))
        elif word == "spin":
            sys.stdout.write("started\n")
            sys.stdout.flush()
            while not interrupted:
                time.sleep(0.05)
            raise CellError("Interrupted", "", i)
        elif word.startswith("=") and len(word) > 1:
            variables[word[1:]] = pop(word, i)
        elif word in variables:
            stack.append(variables[word])
        else:
            raise CellError("UnknownWord", word, i)
    return str(stack[-1]) if stack else ""


def main():
    fd_in = int(os.environ["WARREN_CELL_IN"])
    fd_out = int(os.environ["WARREN_CELL_OUT"])
    for name in ("WARREN_CELL_IN", "WARREN_CELL_OUT", "WARREN_CELL_PROTOCOL"):
        os.environ.pop(name, None)
    os.set_inheritable(fd_in, False)
    os.set_inheritable(fd_out, False)
    signal.signal(signal.SIGINT, on_sigint)
    commands = os.fdopen(fd_in, "rb", buffering=1 << 16)

    def send(header, body=b""):
        data = header.encode("ascii") + b"\n" + body
        while data:
            data = data[os.write(fd_out, data) :]

    send("ready 1 %d" % len(b"stack calculator 1"), b"stack calculator 1")
    variables = {}
    while True:
        line = commands.readline()
        if not line:
            return 0  # end of file: the session is closing
        if not line.endswith(b"\n"):
            sys.stderr.write("custom adapter: protocol error: truncated header\n")
            return 2
        tokens = line[:-1].decode("ascii", "replace").split(" ")
        if not tokens[-1].isdigit():
            sys.stderr.write("custom adapter: protocol error: bad length in %r\n" % line)
            return 2
        body = commands.read(int(tokens[-1]))
        if tokens[0] != "run":
            continue  # unknown message types are skipped
        cell_id = tokens[1]
        global interrupted
        interrupted = False
        try:
            value = run(body.decode("utf-8"), variables).encode()
            reply = ("done %s ok %d" % (cell_id, len(value)), value)
        except CellError as e:
            name, value = e.name.encode(), e.value.encode()
            trace = ("  at word %d of cell %s\n" % (e.where + 1, cell_id)).encode()
            total = len(name) + len(value) + len(trace)
            reply = (
                "done %s error %d %d %d" % (cell_id, len(name), len(value), total),
                name + value + trace,
            )
        sys.stdout.flush()
        sys.stderr.flush()
        send(*reply)


if __name__ == "__main__":
    sys.exit(main())
