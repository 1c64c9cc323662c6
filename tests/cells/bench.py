"""Round trip of an empty cell through the drivers, beside a raw pipe ping-pong (not a test).

    python3 tests/cells/bench.py [--cells 3000] [--pin]

For each case: write a frame, block on the reply pipe until the answer, then read fds 1 and 2
until they would block (the engine's drain), as the engine will. `--pin` puts this process and
its children on one core (cross-core wake-ups dominate on small VMs). Prints p50/p99 in µs,
and the driver's own CPU time per cell (user + system, from /proc).
"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ECHO = (
    "import os\nwhile True:\n    b = os.read(0, 65536)\n    if not b: break\n    os.write(1, b)\n"
)


def cpu_seconds(pid):
    """user + system CPU time a process has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentiles(samples):
    samples = sorted(samples)
    return tuple(
        samples[min(len(samples) - 1, int(q * len(samples)))] / 1000.0 for q in (0.5, 0.99)
    )


def ping_pong(argv, n, warmup):
    """A raw pipe ping-pong: 16 bytes there, 16 bytes back."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    w, r = proc.stdin.fileno(), proc.stdout.fileno()
    msg, samples = b"x" * 15 + b"\n", []
    for i in range(n + warmup):
        t = time.perf_counter_ns()
        os.write(w, msg)
        got = 0
        while got < len(msg):
            got += len(os.read(r, 65536))
        if i >= warmup:
            samples.append(time.perf_counter_ns() - t)
    proc.stdin.close()
    proc.wait()
    proc.stdout.close()
    return percentiles(samples)


def cells(argv, code, n, warmup):
    """`run` / `done` through a driver, then the drain of fds 1 and 2."""
    with harness.Session(argv) as s:
        cmd, reply, outs = s.cmd_w, s.reply_r, (s.out_fd, s.err_fd)
        os.set_blocking(reply, True)
        body, samples = code.encode(), []
        for i in range(n + warmup):
            if i == warmup:
                cpu = cpu_seconds(s.proc.pid)
            frame = b"run %d %d\n" % (i, len(body)) + body
            t = time.perf_counter_ns()
            os.write(cmd, frame)
            buf = os.read(reply, 65536)
            while not buf.endswith(b"\n"):  # an ok done without value ends with its header
                buf += os.read(reply, 65536)
            for fd in outs:
                try:
                    os.read(fd, 65536)
                except BlockingIOError:
                    pass
            if i >= warmup:
                samples.append(time.perf_counter_ns() - t)
            if not buf.startswith(b"done %d ok 0\n" % i):
                raise SystemExit("unexpected reply %r" % buf)
        cpu = (cpu_seconds(s.proc.pid) - cpu) / n * 1e6
        return percentiles(samples) + (cpu,)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=3000)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--pin", action="store_true", help="run everything on one core")
    args = ap.parse_args()
    if args.pin:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    n, w = args.cells, args.warmup
    rows = [
        ("raw pipe ping-pong, python echo", ping_pong([sys.executable, "-c", ECHO], n, w)),
        ("raw pipe ping-pong, cat", ping_pong(["cat"], n, w)),
        ("python driver, `pass` cell", cells(harness.python_argv(), "pass", n, w)),
        ("bash driver, empty cell", cells(harness.bash_argv(), "", n, w)),
        ("bash driver, `:` cell", cells(harness.bash_argv(), ":", n, w)),
    ]
    print("%d round trips each after %d warm-up%s; µs" % (n, w, ", one core" if args.pin else ""))
    for name, row in rows:
        cpu = "   driver CPU/cell %6.1f" % row[2] if len(row) > 2 else ""
        print("  %-36s p50 %8.1f   p99 %8.1f%s" % (name, row[0], row[1], cpu))


if __name__ == "__main__":
    main()
