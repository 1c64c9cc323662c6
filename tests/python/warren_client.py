"""A warren client in Python, written from the README alone: it signs every call, runs Execute
on every engine, follows a task with StreamOutput from a middle sequence number, and checks
each refusal and its message.

Usage: python warren_client.py CONNECTION_FILE PROTO_DIR
Stubs are generated from PROTO_DIR (the repository's proto/proto) with grpcio-tools at start.
Exits 0 and prints "all checks passed" when everything holds.
"""

import glob
import hashlib
import hmac
import json
import os
import sys
import tempfile
import time

import grpc
from grpc_tools import protoc

METHOD_PREFIX = "/warren.v1."


def generate_stubs(proto_dir):
    out = tempfile.mkdtemp(prefix="warren-py-stubs-")
    files = sorted(glob.glob(os.path.join(proto_dir, "warren", "v1", "*.proto")))
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    code = protoc.main(
        ["protoc", f"-I{proto_dir}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}"]
        + files
    )
    if code != 0:
        raise SystemExit(f"protoc failed ({code})")
    sys.path.insert(0, out)


def sign(conn, method, ts=None, nonce=None, hub_id=None):
    """The README's recipe."""
    ts = str(int(time.time())) if ts is None else ts
    nonce = os.urandom(16).hex() if nonce is None else nonce
    hub = conn["hub_id"] if hub_id is None else hub_id
    canonical = "\n".join(["warren-hmac-v1", hub, method, ts, nonce]).encode()
    sig = hmac.new(bytes.fromhex(conn["key"]), canonical, hashlib.sha256).hexdigest()
    return f"Warren-HMAC-SHA256 ts={ts},nonce={nonce},sig={sig}"


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print(f"ok: {what}")


def main():
    connection_file, proto_dir = sys.argv[1], sys.argv[2]
    generate_stubs(proto_dir)
    from warren.v1 import control_pb2, control_pb2_grpc, execution_pb2, execution_pb2_grpc, task_pb2

    conn = json.load(open(connection_file))
    check(
        set(conn) >= {"version", "socket", "hub_id", "key", "hub_pid"} and conn["version"] == 1,
        "the connection file has its documented fields",
    )
    channel = grpc.insecure_channel(
        "unix:" + conn["socket"], options=[("grpc.default_authority", "localhost")]
    )
    control = control_pb2_grpc.ControlStub(channel)
    execution = execution_pb2_grpc.ExecutionStub(channel)

    def auth(method, **kw):
        return [("authorization", sign(conn, method, **kw))]

    version = control.GetVersion(
        control_pb2.GetVersionRequest(protocol_version=2),
        metadata=auth("/warren.v1.Control/GetVersion"),
    )
    check(version.protocol_version == 2, "the hub speaks protocol 2")
    check(version.hub_id == conn["hub_id"], "GetVersion names the connection file's hub id")

    engines = control.ListEngines(
        control_pb2.ListEnginesRequest(), metadata=auth("/warren.v1.Control/ListEngines")
    ).engines
    check(len(engines) >= 2, f"{len(engines)} engines are registered")

    # Execute on every engine.
    request = execution_pb2.ExecuteRequest(
        spec=task_pb2.TaskSpec(argv=task_pb2.Argv(args=["echo", "hello from python"])),
        targets=task_pb2.Targets(all=task_pb2.AllEngines()),
    )
    out, results, on = {}, {}, {}
    for event in execution.Execute(request, metadata=auth("/warren.v1.Execution/Execute")):
        kind = event.WhichOneof("kind")
        if kind == "output":
            out[event.task_id] = out.get(event.task_id, b"") + event.output.data
        elif kind == "result":
            results[event.task_id] = event.result.state
            on[event.task_id] = event.engine_id
    check(len(results) == len(engines), "Execute ran one task per engine")
    check(
        all(s == task_pb2.TASK_STATE_SUCCEEDED for s in results.values()),
        "every task succeeded",
    )
    check(sorted(on.values()) == sorted(e.id for e in engines), "each engine ran one of them")
    check(
        all(data == b"hello from python\n" for data in out.values()),
        "each task's output arrived",
    )

    # Follow a task from a middle sequence number.
    # Spaced out, so that the lines arrive as many events.
    script = "i=1; while [ $i -le 20 ]; do echo line$i; sleep 0.01; i=$((i+1)); done"
    submitted = execution.Submit(
        execution_pb2.ExecuteRequest(spec=task_pb2.TaskSpec(script=script)),
        metadata=auth("/warren.v1.Execution/Submit"),
    )
    task = submitted.task_ids[0]

    def follow(from_seq):
        events = execution.StreamOutput(
            execution_pb2.StreamOutputRequest(task_id=task, from_seq=from_seq),
            metadata=auth("/warren.v1.Execution/StreamOutput"),
        )
        return [e for e in events if e.WhichOneof("kind") != "heartbeat"]

    everything = follow(0)
    check([e.seq for e in everything] == list(range(len(everything))), "seqs run from 0 with no gap")
    text = b"".join(e.output.data for e in everything if e.WhichOneof("kind") == "output")
    check(text == b"".join(b"line%d\n" % i for i in range(1, 21)), "the task's output is whole")
    middle = len(everything) // 2
    later = follow(middle)
    check(
        [e.SerializeToString() for e in later]
        == [e.SerializeToString() for e in everything[middle:]],
        f"StreamOutput from seq {middle} gives the same events from there on",
    )

    # Every refusal, and its message.
    list_engines = "/warren.v1.Control/ListEngines"

    def refused(metadata, reason):
        try:
            control.ListEngines(control_pb2.ListEnginesRequest(), metadata=metadata)
        except grpc.RpcError as err:
            check(
                err.code() == grpc.StatusCode.UNAUTHENTICATED and err.details().startswith(reason),
                f"refused: {reason} ({err.details()[:60]}...)",
            )
            check(len(err.details()) < 1000, f"the refusal is short ({len(err.details())} bytes)")
            return dict(err.trailing_metadata() or ())
        raise AssertionError(f"not refused, expected {reason}")

    refused([], "missing signature")
    now = str(int(time.time()))
    good = sign(conn, list_engines, ts=now)
    for bad in [
        good.replace(" ts=", "  ts=", 1),
        good.replace(",nonce=", ", nonce=", 1),
        good + " ",
        good.replace(f"ts={now}", f"ts=0{now}", 1),
        good[:-64] + good[-64:].upper(),
        "Warren-HMAC-SHA256 ts=" + "9" * 10240 + ",nonce=x,sig=y",
    ]:
        refused([("authorization", bad)], "malformed signature")
    refused(
        [("authorization", sign(conn, list_engines)), ("authorization", sign(conn, list_engines))],
        "malformed signature",
    )
    trailers = refused(auth("/warren.v1.Control/QueueStatus"), "bad signature")
    check(trailers.get("warren-hub-id") == conn["hub_id"], "a bad signature names the hub id")
    refused(auth(list_engines, hub_id="another-hub"), "bad signature")
    trailers = refused(auth(list_engines, ts=str(int(time.time()) - 600)), "stale signature")
    check(
        abs(int(trailers.get("warren-hub-time", "0")) - time.time()) < 60,
        "a stale refusal carries the hub's time",
    )
    refused(auth(list_engines, ts=str(int(time.time()) + 600)), "future signature")
    once = auth(list_engines)
    control.ListEngines(control_pb2.ListEnginesRequest(), metadata=once)
    refused(once, "replayed signature")
    # The exact form, after all those refusals, still passes.
    control.ListEngines(control_pb2.ListEnginesRequest(), metadata=[("authorization", good)])
    print("all checks passed")


if __name__ == "__main__":
    main()
