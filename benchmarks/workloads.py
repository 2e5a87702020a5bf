"""Realistic workloads: qactuar's async model against uvicorn and Granian, one process each.

    python benchmarks/workloads.py [--rounds 3] [--seconds 6] [--connections 64] [--idle 10000]

Each round runs every workload on every server in turn (the order of the
servers rotates every round; medians are printed), pinned as http_async.py
pins them (server on BENCH_SERVER_CPUS, wrk on BENCH_LOAD_CPUS):

- ``fastapi JSON``: a FastAPI endpoint (``apps_fastapi:app``) that
  validates a JSON POST into a Pydantic model and answers another;
- ``upload 64 KiB``: a 64 KiB POST, echoed back whole (``apps:upload``);
- ``download 1 MiB``: a 1 MiB response in one body message (``apps:download``);
- ``stream 1,000 chunks``: a chunked response of 1,000 body messages of 64
  bytes (``apps:stream``);
- ``idle keep-alive``: ``--idle`` connections (default 10,000) each make one
  request and then stay open and idle; the server's RSS growth per
  connection (the RSS of its processes with them open, less after one request on one
  connection), in KiB.

uvicorn runs with httptools and uvloop, Granian with ``--interface asgi
--workers 1 --http 1``, access logs off. The descriptor limit is raised for
the idle connections (to their count plus some, in this process and the
servers it starts).
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import sys
import tempfile
import time

from common import (
    ensure_python_packages,
    free_port,
    qactuar_command,
    rss_kib,
    run_wrk,
    start_server,
    stop_server,
    uvicorn_command,
)

SERVERS = ("qactuar async", "uvicorn", "granian")
#: name: (app, factory?, path, wrk script or "")
WORKLOADS: dict[str, tuple[str, bool, str, str]] = {
    "fastapi JSON": ("apps_fastapi:app", False, "/items", "json"),
    "upload 64 KiB": ("apps:upload", False, "/", "upload"),
    "download 1 MiB": ("apps:download", False, "/", ""),
    "stream 1,000 chunks": ("apps:stream", False, "/", ""),
}
SCRIPTS = {
    "json": 'wrk.method = "POST"\n'
    'wrk.body = \'{"name": "widget", "price": 9.5, "tags": ["new", "blue"]}\'\n'
    'wrk.headers["Content-Type"] = "application/json"\n',
    "upload": 'wrk.method = "POST"\n'
    'wrk.body = string.rep("x", 65536)\n'
    'wrk.headers["Content-Type"] = "application/octet-stream"\n',
}


def command(server: str, app: str, factory: bool, port: int, *extra: str) -> list[str]:
    more = [*extra, *(["--factory"] if factory else [])]
    if server == "qactuar async":
        return qactuar_command(app, port, "async", *more)
    if server == "uvicorn":
        return uvicorn_command(app, port, "--lifespan", "off", *more)
    return [
        sys.executable, "-m", "granian", app, "--interface", "asgi", "--workers", "1",
        "--http", "1", "--no-ws", "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning", *more,
    ]  # fmt: skip


#: For the idle connections, every server's accept queue as long (Granian's
#: default 1,024 also caps the connections it serves at once: its backpressure).
IDLE_OPTIONS = {
    "qactuar async": ("--backlog", "16384"),
    "uvicorn": ("--backlog", "16384"),
    "granian": ("--backlog", "16384", "--backpressure", "16384"),
}


def check_answer(port: int, path: str, script: str) -> None:
    """One request as wrk will make it: a 200, else the server is misconfigured here."""
    if script == "json":
        body = b'{"name": "widget", "price": 9.5, "tags": ["new", "blue"]}'
        head = f"POST {path} HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
    elif script == "upload":
        body = b"x" * 65536
        head = f"POST {path} HTTP/1.1\r\nHost: b\r\n"
    else:
        body, head = b"", f"GET {path} HTTP/1.1\r\nHost: b\r\n"
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        status = sock.recv(64)
    if not status.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"{path} answered {status!r}")


def throughput(server: str, workload: str, seconds: int, connections: int, lua: dict[str, str]
               ) -> tuple[float, float, float]:  # fmt: skip
    """(requests/s, p99 ms, MiB/s of response bodies) of one run."""
    app, factory, path, script = WORKLOADS[workload]
    port = free_port()
    proc = start_server(command(server, app, factory, port), port)
    try:
        check_answer(port, path, script)
        extra = ["-s", lua[script]] if script else []
        run_wrk(port, 1, connections, path, extra=extra)  # warm-up
        result = run_wrk(port, seconds, connections, path, extra=extra)
    finally:
        stop_server(proc)
    return result.rps, result.p99_ms, result.transfer_mib_s


def idle_kib_per_connection(server: str, count: int) -> float:
    """RSS growth per idle keep-alive connection that made one request, in KiB."""
    port = free_port()
    proc = start_server(command(server, "apps:hello", False, port, *IDLE_OPTIONS[server]), port)
    held: list[socket.socket] = []
    try:
        request = b"GET / HTTP/1.1\r\nHost: b\r\n\r\n"
        first = socket.create_connection(("127.0.0.1", port), timeout=10)
        held.append(first)
        first.sendall(request)
        first.recv(4096)
        time.sleep(0.5)
        before = rss_kib(proc.pid)
        for _ in range(count - 1):
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.sendall(request)
            held.append(sock)
        for sock in held[1:]:
            if not sock.recv(4096).startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"{server}: an idle connection's request failed")
        time.sleep(1)
        after = rss_kib(proc.pid)
        return (after - before) / (count - 1)
    finally:
        for sock in held:
            sock.close()
        stop_server(proc)


def raise_fd_limit(count: int) -> None:
    want = count + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--idle", type=int, default=10_000)
    args = parser.parse_args()
    ensure_python_packages("uvicorn", "uvloop", "httptools", "granian", "fastapi")
    raise_fd_limit(args.idle)
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    idle: dict[str, list[float]] = {server: [] for server in SERVERS}
    with tempfile.TemporaryDirectory() as tmp:
        lua = {}
        for name, text in SCRIPTS.items():
            lua[name] = os.path.join(tmp, f"{name}.lua")
            with open(lua[name], "w") as fh:
                fh.write(text)
        for round_no in range(args.rounds):
            shift = round_no % len(SERVERS)
            order = SERVERS[shift:] + SERVERS[:shift]
            for workload in WORKLOADS:
                for server in order:
                    got = throughput(server, workload, args.seconds, args.connections, lua)
                    results.setdefault((workload, server), []).append(got)
                    print(f"round {round_no + 1} {workload} {server}: {got[0]:,.0f}/s, "
                          f"p99 {got[1]:.1f} ms", file=sys.stderr)  # fmt: skip
            if args.idle:
                for server in order:
                    idle[server].append(idle_kib_per_connection(server, args.idle))
                    print(f"round {round_no + 1} idle {server}: {idle[server][-1]:.1f} KiB "
                          "per connection", file=sys.stderr)  # fmt: skip
    print(f"\nrealistic workloads, 1 process each, {args.connections} connections, median of "
          f"{args.rounds} ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs)")  # fmt: skip
    print("| workload | " + " | ".join(SERVERS) + " | qactuar / uvicorn | qactuar / granian |")
    print("|---|" + "---:|" * (len(SERVERS) + 2))
    for workload in WORKLOADS:
        rps = {s: statistics.median(r[0] for r in results[(workload, s)]) for s in SERVERS}
        p99 = {s: statistics.median(r[1] for r in results[(workload, s)]) for s in SERVERS}
        cells = [f"{rps[s]:,.0f}/s (p99 {p99[s]:.1f} ms)" for s in SERVERS]
        ours = rps["qactuar async"]
        print(f"| {workload} | " + " | ".join(cells)
              + f" | {ours / rps['uvicorn']:.2f}x | {ours / rps['granian']:.2f}x |")  # fmt: skip
    if args.idle:
        kib = {s: statistics.median(idle[s]) for s in SERVERS}
        cells = [f"{kib[s]:.1f} KiB" for s in SERVERS]
        print(f"| {args.idle:,} idle keep-alive connections: RSS per connection | "
              + " | ".join(cells) + f" | {kib['qactuar async'] / kib['uvicorn']:.2f}x | "
              f"{kib['qactuar async'] / kib['granian']:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
