"""The cell drivers through real pipes, with tests/cells/harness.py in the engine's role.

Run from the repository root: python3 -m unittest discover -s tests/cells -v
Each test names one behaviour; the Rust end-to-end tests will check the same ones through
real engines.
"""

import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Session  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MB = 1 << 20


def wait_for_child(session, name, timeout=30.0):
    """Waits until a process called `name` runs in the session's process group."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open("/proc/%s/stat" % pid) as f:
                    stat = f.read()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            if comm == name and int(fields[2]) == session.proc.pid and fields[0] != "Z":
                return
        session._pump(0.01)
    raise TimeoutError("no %s in the session's process group" % name)


class Common:
    """What every driver must do, whatever its language."""

    def start(self, **kw):
        return Session(self.argv(), **kw)

    def assertOk(self, cell, value=None):
        self.assertEqual(cell.status, "ok", cell.traceback or cell)
        self.assertEqual(cell.value, value)

    def test_started_without_the_protocol_fds_it_says_so(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("WARREN_CELL")}
        done = subprocess.run(self.argv(), env=env, capture_output=True, timeout=60)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn(b"WARREN_CELL_IN", done.stderr)

    def test_sigint_while_idle_is_ignored(self):
        with self.start() as s:
            self.assertOk(s.run(self.SET_X))
            s.interrupt()
            time.sleep(0.2)  # give a wrongly handled signal time to do harm
            self.assertIsNone(s.proc.poll())
            self.assertEqual(s.run(self.PRINT_X).stdout, b"1\n")

    def test_sigkill_is_seen_as_death(self):
        with self.start() as s:
            cell = s.submit(self.SPIN)
            s.wait_output(b"started")
            s.kill()
            cell = s.wait()
            self.assertEqual((cell.status, cell.exit), ("lost", -9))

    def test_end_of_file_on_the_command_pipe_ends_the_interpreter(self):
        with self.start() as s:
            self.assertOk(s.run(self.SET_X))
            self.assertEqual(s.close(), 0)

    def test_unknown_messages_are_skipped(self):
        with self.start() as s:
            s.send_raw(b"hello 1 two 5\nabcde" + b"later 0\n")
            self.assertOk(s.run(self.SET_X))
            self.assertEqual(s.run(self.PRINT_X).stdout, b"1\n")

    def test_a_malformed_header_ends_the_interpreter_with_status_2(self):
        with self.start() as s:
            s.send_raw(b"run 1 notalength\n")
            self.assertEqual(s.wait_exit(), 2)
            self.assertIn(b"protocol error", bytes(s.orphan.stderr))


class Children:
    """For interpreters whose cells can start processes."""

    def test_protocol_fds_and_variables_do_not_reach_the_cells_children(self):
        with self.start() as s:
            pipes = {"pipe:[%d]" % os.fstat(fd).st_ino for fd in (s.cmd_w, s.reply_r)}
            code = self.SHELL % "env | grep -c ^WARREN_CELL; ls -l /proc/self/fd"
            out = s.run(code).stdout.decode()
            self.assertEqual(out.splitlines()[0], "0")  # grep found no variable
            self.assertIn("pipe:[%d]" % os.fstat(s.out_fd).st_ino, out)  # ls saw its stdout
            for pipe in pipes:
                self.assertNotIn(pipe, out)

    def test_a_background_child_does_not_hide_death(self):
        with self.start() as s:
            self.assertOk(s.run(self.SHELL % "sleep 600 &"))  # left running, in the group
            cell = s.run(self.EXIT_3, timeout=20)
            self.assertEqual((cell.status, cell.exit), ("lost", 3))  # end of file came at once


class PythonDriverTests(Common, Children, unittest.TestCase):
    SET_X = "x = 1"
    PRINT_X = "print(x)"
    SPIN = "print('started', flush=True)\nwhile True:\n    pass"
    SHELL = "import os\n_ = os.system(%r)"  # os.system, unlike subprocess, closes no fds
    EXIT_3 = "import os\nos._exit(3)"

    def argv(self):
        return harness.python_argv()

    def test_state_survives_between_cells(self):
        with self.start() as s:
            self.assertOk(s.run("import math\nx = 40\ndef f(y):\n    return x + y"))
            self.assertOk(s.run("class C:\n    n = f(2)"))
            self.assertOk(s.run("C.n, math.pi > 3"), "(42, True)")

    def test_last_expression_value_is_its_repr(self):
        with self.start() as s:
            self.assertOk(s.run("'a' * 3"), "'aaa'")
            self.assertOk(s.run("x = 5"))
            self.assertOk(s.run("x = 5\nx + 1"), "6")
            self.assertOk(s.run("None"))
            cell = s.run("print('shown')")
            self.assertOk(cell)
            self.assertEqual(cell.stdout, b"shown\n")
            self.assertOk(s.run("_ * 2"), "12")  # _ is the last value, as in the REPL
            self.assertOk(
                s.run(
                    "import pickle\nclass P:\n    pass\n"
                    "pickle.loads(pickle.dumps(P())).__class__.__name__"
                ),
                "'P'",
            )

    def test_error_carries_name_value_and_traceback(self):
        with self.start() as s:
            self.assertOk(s.run("def inner():\n    return {}['missing']"))
            cell = s.run("y = 1\ninner()")
            self.assertEqual(
                (cell.status, cell.name, cell.error_value), ("error", "KeyError", "'missing'")
            )
            self.assertTrue(
                cell.traceback.startswith("Traceback (most recent call last):\n"), cell.traceback
            )
            self.assertIn('File "<cell 2>", line 2, in <module>', cell.traceback)
            self.assertIn('File "<cell 1>", line 2, in inner', cell.traceback)
            self.assertIn("    return {}['missing']", cell.traceback)  # the source line is shown
            self.assertTrue(cell.traceback.endswith("KeyError: 'missing'\n"))
            self.assertEqual(
                cell.traceback.count("File "), 2, "no driver frames: " + cell.traceback
            )
            self.assertOk(s.run("y"), "1")  # what ran before the error stays

    def test_a_repeated_cell_names_itself_in_its_traceback(self):
        with self.start() as s:
            for n in (1, 2, 3):  # the second and third reuse the first one's compiled code
                cell = s.run("1/0")
                self.assertIn('File "<cell %d>", line 1, in <module>' % n, cell.traceback)
                self.assertIn("    1/0", cell.traceback)

    def test_syntax_error_is_an_error_without_frames(self):
        with self.start() as s:
            cell = s.run("x = (")
            self.assertEqual((cell.status, cell.name), ("error", "SyntaxError"))
            self.assertNotIn("Traceback", cell.traceback)
            self.assertIn('File "<cell 1>", line 1', cell.traceback)

    def test_system_exit_is_an_error_and_the_session_survives(self):
        with self.start() as s:
            cell = s.run("import sys\nsys.exit(4)")
            self.assertEqual(
                (cell.status, cell.name, cell.error_value), ("error", "SystemExit", "4")
            )
            self.assertOk(s.run("1"), "1")

    def test_interrupt_keeps_state(self):
        with self.start() as s:
            self.assertOk(s.run("x = 1"))
            s.submit(self.SPIN)
            s.wait_output(b"started")
            s.interrupt()
            cell = s.wait()
            self.assertEqual((cell.status, cell.name), ("error", "KeyboardInterrupt"))
            self.assertIn('File "<cell 2>", line ', cell.traceback)
            self.assertEqual(cell.traceback.count("File "), 1, cell.traceback)  # no driver frames
            self.assertOk(s.run("x"), "1")

    def test_interrupt_stops_a_foreground_subprocess(self):
        with self.start() as s:
            s.submit("import subprocess\nsubprocess.run(['sleep', '600'])")
            wait_for_child(s, "sleep")
            s.interrupt()
            self.assertEqual(s.wait().name, "KeyboardInterrupt")
            self.assertOk(s.run("2"), "2")

    def test_bytes_land_in_their_cell(self):
        code = (
            "import os, subprocess, sys\n"
            "print('print-{0}')\n"
            "print('err-{0}', file=sys.stderr)\n"
            "sys.stdout.write('nonl-{0}')\n"
            "os.write(1, b'raw-{0}\\n')\n"
            "subprocess.run(['echo', 'sub-{0}'])\n"
            "subprocess.run('echo suberr-{0} >&2', shell=True)\n"
            "import ctypes\n"
            "_ = ctypes.CDLL(None).printf(b'libc-{0}')\n"  # C stdio, block-buffered on a pipe
        )
        with self.start() as s:
            for round in range(10):
                a, b = s.run(code.format("a%d" % round)), s.run(code.format("b%d" % round))
                for cell, tag in ((a, "a%d" % round), (b, "b%d" % round)):
                    self.assertOk(cell)
                    out = cell.stdout.decode()
                    for m in ("print", "nonl", "raw", "sub", "libc"):
                        self.assertEqual(out.count(m + "-"), 1, out)
                        self.assertIn(m + "-" + tag, out)
                    self.assertEqual(
                        sorted(cell.stderr.split()),
                        [b"err-" + tag.encode(), b"suberr-" + tag.encode()],
                    )

    def test_a_hundred_megabytes_from_one_cell(self):
        with self.start() as s:
            cell = s.run(
                "chunk = 'x' * ((1 << 20) - 1)\nfor _ in range(100):\n    print(chunk)\nlen(chunk)"
            )
            self.assertOk(cell, str(MB - 1))
            self.assertEqual(len(cell.stdout), 100 * MB)
            self.assertEqual(cell.stdout.count(b"\n"), 100)
            self.assertEqual(cell.stdout.count(b"x"), 100 * (MB - 1))
            self.assertEqual(s.run("print('next')").stdout, b"next\n")

    def test_os_exit_is_seen_as_death(self):
        with self.start() as s:
            cell = s.run("print('before')\nimport os\nos._exit(3)")
            self.assertEqual((cell.status, cell.exit, bytes(cell.stdout)), ("lost", 3, b"before\n"))

    def test_stdin_is_the_sessions(self):
        with self.start() as s:
            self.assertEqual(s.run("input()").name, "EOFError")  # /dev/null
        with self.start(stdin=subprocess.PIPE) as s:
            s.proc.stdin.write(b"typed\n")
            s.proc.stdin.flush()
            self.assertOk(s.run("input()"), "'typed'")

    def test_cells_run_in_main(self):
        with self.start() as s:
            self.assertOk(
                s.run("__name__, sorted(k for k in globals() if not k.startswith('__'))"),
                "('__main__', [])",
            )


class BashDriverTests(Common, Children, unittest.TestCase):
    SET_X = "x=1"
    PRINT_X = "echo $x"
    SPIN = "echo started; while :; do :; done"
    SHELL = "%s"
    EXIT_3 = "exit 3"

    def argv(self):
        return harness.bash_argv()

    def assertStatus(self, cell, status):
        if status == 0:
            self.assertOk(cell)
        else:
            self.assertEqual(
                (cell.status, cell.name, cell.error_value),
                ("error", "ExitStatus", "exit status %d" % status),
            )

    def test_state_survives_between_cells(self):
        with self.start() as s:
            self.assertOk(
                s.run(
                    'x=1; declare -A m=([k]=v); f() { echo "f $x ${m[k]} $1"; }\n'
                    "export E=exported; cd /tmp; set -o pipefail"
                )
            )
            cell = s.run("f arg; pwd; bash -c 'echo $E'; echo $-; shopt -o pipefail")
            self.assertEqual(
                cell.stdout.decode().splitlines()[:3], ["f 1 v arg", "/tmp", "exported"]
            )
            self.assertIn("pipefail       \ton", cell.stdout.decode())

    def test_status_is_the_last_commands(self):
        with self.start() as s:
            self.assertStatus(s.run("false; true"), 0)
            self.assertStatus(s.run("true; false"), 1)
            self.assertStatus(s.run("(exit 7)"), 7)
            self.assertStatus(s.run("no-such-command-here"), 127)
            self.assertStatus(s.run("if then"), 2)  # a syntax error
            self.assertStatus(s.run("return 5"), 5)

    def test_break_and_continue_do_not_escape_the_cell(self):
        with self.start() as s:
            self.assertStatus(s.run("x=1; break; x=2"), 0)
            self.assertStatus(s.run("continue 3"), 0)
            self.assertEqual(s.run("echo $x").stdout, b"1\n")

    def test_cells_may_use_fds_3_to_9(self):
        with self.start() as s:
            self.assertOk(s.run("exec 3>&1 4>/dev/null 9<&0; echo three >&3"))
            cell = s.run("echo again >&3; exec 3>&- 4>&- 9<&-")
            self.assertEqual(cell.stdout, b"again\n")
            self.assertOk(s.run("true"))

    def test_interrupt_keeps_state(self):
        with self.start() as s:
            self.assertOk(s.run("x=1"))
            s.submit(self.SPIN + "; x=2")
            s.wait_output(b"started")
            s.interrupt()
            cell = s.wait()
            self.assertEqual((cell.status, cell.name), ("error", "Interrupted"))
            self.assertEqual(s.run("echo $x").stdout, b"1\n")

    def test_interrupt_stops_a_foreground_command_in_a_function(self):
        with self.start() as s:
            self.assertOk(s.run("x=1; g() { sleep 600; x=2; }"))
            s.submit("g; x=3")
            wait_for_child(s, "sleep")
            s.interrupt()
            self.assertEqual(s.wait().name, "Interrupted")
            self.assertEqual(
                s.run("echo $x; trap -p DEBUG; shopt extdebug").stdout, b"1\nextdebug       \toff\n"
            )

    def test_the_cells_shell_options_do_not_break_the_driver(self):
        for options in ("set -u", "set -e", "IFS=0", "set -f; shopt -s nullglob failglob"):
            with self.start() as s:
                self.assertOk(s.run(options))
                flags = s.run("echo $-").stdout
                self.assertStatus(s.run("f() { return 10; }; f || true"), 0)
                if options != "set -e":
                    self.assertStatus(s.run("(exit 10)"), 10)
                s.submit(self.SPIN)
                s.wait_output(b"started")
                s.interrupt()
                self.assertEqual(s.wait().name, "Interrupted", options)
                self.assertStatus(s.run("break"), 0)
                s.send_raw(b"hello 1 0\n")
                self.assertEqual(s.run("echo $HOME").stdout, os.environ["HOME"].encode() + b"\n")
                self.assertEqual(s.run("echo $-").stdout, flags)  # the interrupt kept them

    def test_bytes_land_in_their_cell(self):
        code = (
            "echo echo-{0}; echo err-{0} >&2; printf nonl-{0}; /bin/echo sub-{0};"
            " sh -c 'echo suberr-{0} >&2'"
        )
        with self.start() as s:
            for round in range(10):
                for tag in ("a%d" % round, "b%d" % round):
                    cell = s.run(code.format(tag))
                    self.assertEqual(
                        cell.stdout.decode(), "echo-{0}\nnonl-{0}sub-{0}\n".format(tag)
                    )
                    self.assertEqual(cell.stderr.decode(), "err-{0}\nsuberr-{0}\n".format(tag))

    def test_a_hundred_megabytes_from_one_cell(self):
        with self.start() as s:
            cell = s.run("head -c %d /dev/zero | tr '\\0' x" % (100 * MB))
            self.assertOk(cell)
            self.assertEqual(len(cell.stdout), 100 * MB)
            self.assertEqual(cell.stdout.count(b"x"), 100 * MB)

    def test_exit_ends_the_session(self):
        with self.start() as s:
            cell = s.run("echo bye; exit 3")
            self.assertEqual((cell.status, cell.exit, bytes(cell.stdout)), ("lost", 3, b"bye\n"))

    def test_code_with_utf8_and_long_cells(self):
        with self.start() as s:
            self.assertEqual(s.run("echo 'é ✓'").stdout, "é ✓\n".encode())
            big = "y=%s\necho ${#y}" % ("z" * 100000)
            self.assertEqual(s.run(big).stdout, b"100000\n")


class CustomAdapterTests(Common, unittest.TestCase):
    """The stack calculator in custom_adapter.py, written from docs/cell-protocol.md alone."""

    SET_X = "1 =x"
    PRINT_X = "x ."
    SPIN = "spin"  # prints `started`, then loops until interrupted

    def argv(self):
        return [sys.executable, os.path.join(HERE, "custom_adapter.py")]

    def test_custom_adapter_speaks_the_protocol(self):
        with self.start() as s:
            self.assertEqual(s.banner, "stack calculator 1")
            self.assertEqual(s.run("6 7 * =x").status, "ok")
            cell = s.run("x . x 1 +")
            self.assertEqual((cell.status, cell.value, bytes(cell.stdout)), ("ok", "43", b"42\n"))
            cell = s.run("1 0 /")
            self.assertEqual(
                (cell.status, cell.name, cell.error_value),
                ("error", "ZeroDivision", "division by zero"),
            )
            self.assertIn("at word 3", cell.traceback)
            s.submit("spin")
            s.wait_output(b"started")
            s.interrupt()
            self.assertEqual(s.wait().name, "Interrupted")
            self.assertEqual(s.run("x").value, "42")
            self.assertEqual(s.close(), 0)


if __name__ == "__main__":
    unittest.main()
