"""IPython parallel on the scenarios of warren-bench, for a side-by-side comparison.

Starts a cluster with the ipc transport (ZMQ over Unix sockets in a temp dir) and measures:
cluster start, the round trip of a task running `/bin/true` (and of a no-op, IPython's own
trivial task), throughput of individually submitted no-op tasks, and stdout streaming; and,
beside warren's session scenarios, the round trip of `execute('pass')` and of `apply_sync` on
one engine's direct view, and `execute('pass')` pipelined to both engines (cells per second).
Writes JSON in the shape warren-bench's results use, with the units in the key names.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import ipyparallel as ipp


def quantile(samples, q):
    """Nearest-rank quantile, as warren-bench computes it."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 1))))
    return ordered[rank - 1]


def timed_runs(call, runs):
    """Milliseconds per call after a warm-up of a tenth of the runs."""
    samples = []
    for i in range(runs + runs // 10):
        start = time.perf_counter()
        call()
        if i >= runs // 10:
            samples.append((time.perf_counter() - start) * 1e3)
    return {"p50_ms": round(quantile(samples, 0.5), 3), "p99_ms": round(quantile(samples, 0.99), 3), "runs": runs}


def run_true():
    import subprocess as sp

    sp.run(["/bin/true"], check=True)


def noop():
    return None


def write_stdout(total, chunk):
    # The engine's stdout is IPython's text OutStream (no binary buffer): write text.
    import sys as s

    block = "x" * chunk
    left = total
    while left > 0:
        n = min(chunk, left)
        s.stdout.write(block[:n])
        left -= n
    s.stdout.flush()
    return total


class IpcLinker:
    """Links <prefix>:<port> to each <prefix>-<port> socket as the controller binds them.

    ipyparallel 9.2 binds ipc sockets as <prefix>-<port>, but its engines and clients connect
    to <prefix>:<port>; the controller's schedulers bind theirs over a few seconds, so the
    links are made as the sockets appear, until stopped (bounded: two minutes at most).
    """

    def __init__(self, work):
        import threading

        self.work = work
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        deadline = time.time() + 120
        while not self.done.is_set() and time.time() < deadline:
            for name in os.listdir(self.work):
                if name.startswith("ipp-"):
                    link = os.path.join(self.work, "ipp:" + name[len("ipp-"):])
                    if not os.path.lexists(link):
                        os.symlink(os.path.join(self.work, name), link)
            time.sleep(0.005)

    def stop(self):
        self.done.set()
        self.thread.join()


def record_pids(cluster):
    """Appends the pids of the controller and engines to $IPP_BENCH_PIDS, if set.

    ipyparallel starts each in a session of its own (start_new_session), so the process group
    of run.sh does not hold them: if this script is killed before it stops its cluster,
    run.sh stops exactly these process groups, by pid, and nothing else.
    """
    path = os.environ.get("IPP_BENCH_PIDS")
    if not path:
        return
    pids = []
    if cluster.controller is not None and cluster.controller.pid > 0:
        pids.append(cluster.controller.pid)
    for engine_set in cluster.engines.values():
        for launcher in getattr(engine_set, "launchers", {}).values():
            if launcher.pid > 0:  # -1 until started
                pids.append(launcher.pid)
    with open(path, "a") as f:
        f.writelines(f"{pid}\n" for pid in pids)


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "ipyparallel-results.json"
    quick = os.environ.get("QUICK") == "1"
    scenarios = {}
    work = tempfile.mkdtemp(prefix="ipp-bench-")
    os.environ["IPYTHONDIR"] = work
    start = time.perf_counter()
    cluster = ipp.Cluster(
        n=2,
        profile_dir=os.path.join(work, "profile"),
        # With ipc, the "ip" is a path prefix: sockets are <prefix>-<port> in the temp dir.
        controller_args=["--transport=ipc", f"--ip={work}/ipp"],
        log_level=40,
    )
    try:
        linker = IpcLinker(work)
        cluster.start_controller_sync()
        record_pids(cluster)
        cluster.start_engines_sync(n=2)
        record_pids(cluster)
        client = cluster.connect_client_sync()
        client.wait_for_engines(2, timeout=120)
        linker.stop()
        client[:].apply_sync(noop)
        scenarios["cluster_start_2"] = {"seconds": round(time.perf_counter() - start, 3)}

        view = client.load_balanced_view()
        rt_runs = 300 if quick else 2000
        scenarios["roundtrip_true"] = timed_runs(lambda: view.apply_sync(run_true), rt_runs)
        scenarios["roundtrip_noop"] = timed_runs(lambda: view.apply_sync(noop), rt_runs)

        # Sessions: IPython's engines are live interpreters, as warren's sessions are.
        one = client[0]
        scenarios["session_roundtrip_execute_pass"] = timed_runs(
            lambda: one.execute("pass", block=True), rt_runs
        )
        scenarios["session_roundtrip_apply_sync"] = timed_runs(lambda: one.apply_sync(noop), rt_runs)
        dview = client[:]
        cells = 4000 if quick else 40000
        begin = time.perf_counter()
        pending = [dview.execute("pass", block=False) for _ in range(cells // 2)]
        for result in pending:
            result.get(timeout=600)
        seconds = time.perf_counter() - begin
        scenarios["session_execute_pipelined"] = {
            "cells": cells,
            "engines": 2,
            "seconds": round(seconds, 3),
            "cells_per_s": round(cells / seconds, 1),
            "note": "dview.execute('pass', block=False) on 2 engines, all in flight, then waited for",
        }

        tasks = 2000 if quick else 20000
        begin = time.perf_counter()
        results = [view.apply_async(noop) for _ in range(tasks)]
        for result in results:
            result.get(timeout=600)
        seconds = time.perf_counter() - begin
        scenarios["throughput_noop"] = {"tasks": tasks, "seconds": round(seconds, 3), "tasks_per_s": round(tasks / seconds, 1)}

        total = (32 if quick else 256) << 20
        begin = time.perf_counter()
        result = client[0].apply_async(write_stdout, total, 64 << 10)
        result.get(timeout=600)
        # stdout travels separately from the result (IOPub): wait until all of it is here.
        result.wait_for_output(timeout=600)
        received = len(result.stdout)
        seconds = time.perf_counter() - begin
        scenarios["stream"] = {
            "bytes": total,
            "bytes_received": received,
            "seconds": round(seconds, 3),
            "mb_per_s": round(total / seconds / 1e6, 1),
            "note": "stdout captured by the engine and delivered to the client with the result",
        }
        scenarios["fanout_64"] = {"note": "skipped: 64 Python engines need ~4 GiB and minutes to start on 2 cores"}
    finally:
        cluster.stop_cluster_sync()

    document = {
        "system": "ipyparallel",
        "version": ipp.__version__,
        "python": sys.version.split()[0],
        "transport": "ipc",
        "quick": quick,
        "scenarios": scenarios,
    }
    with open(out_path, "w") as f:
        json.dump(document, f, indent=2)
    for name, figures in scenarios.items():
        print(f"{name:<18} {figures}")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
