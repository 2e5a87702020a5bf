"""Shared pieces of the benchmarks: free ports, pinned servers, wrk runs, medians.

Benchmarks run by hand (never in the test suite). Each one starts every
server under test in turn, over several alternating rounds, so that noise
from a shared machine falls on all of them alike, and reports medians.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SERVER_CPUS = os.environ.get("BENCH_SERVER_CPUS", "0")
LOAD_CPUS = os.environ.get("BENCH_LOAD_CPUS", "1")


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        print("wrk not found: installing Debian's wrk", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
        path = shutil.which("wrk")
    assert path is not None
    return path


def ensure_python_packages(*names: str) -> None:
    missing = []
    for name in names:
        module = name.replace("-", "_")
        try:
            __import__(module)
        except ImportError:
            missing.append(name)
    if missing:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing], check=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not listen on {port} within {timeout}s")


def process_rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` alone, in KiB (0 for a kernel thread)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    """The pids of ``pid``'s children."""
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(p) for p in fh.read().split()]


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` and its descendants, in KiB."""
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            total += process_rss_kib(current)
            pids.extend(children(current))
        except FileNotFoundError:
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of ``pid`` and its descendants: those alive now,
    and those each of them has reaped (the fork model's children are its
    zygote's, which lives as long as the server)."""
    ticks = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            with open(f"/proc/{current}/stat") as fh:
                fields = fh.read().rpartition(")")[2].split()
            pids.extend(children(current))
        except (FileNotFoundError, ProcessLookupError):
            continue  # gone meanwhile (then counted by its parent's reaped time)
        # utime, stime, cutime, cstime: fields 14-17 of proc(5), counted from the state
        ticks += sum(int(f) for f in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    rps: float
    p99_ms: float
    rss_kib: int = 0
    #: Requests wrk completed in the measured run.
    requests: int = 0
    #: Server CPU seconds spent in that run (every process of the server).
    cpu_s: float = 0.0
    #: Response bytes wrk read per second, in MiB.
    transfer_mib_s: float = float("nan")

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s / self.requests * 1e6 if self.requests else float("nan")


@dataclass
class Series:
    name: str
    results: list[Result] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return statistics.median(r.rps for r in self.results)

    @property
    def p99(self) -> float:
        return statistics.median(r.p99_ms for r in self.results)

    @property
    def rss_mib(self) -> float:
        return statistics.median(r.rss_kib for r in self.results) / 1024


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
#: wrk's Transfer/sec units, in MiB (wrk counts in powers of 1024)
_BYTES = {"B": 1 / 1024**2, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0}


def run_wrk(
    port: int,
    seconds: int,
    connections: int,
    path: str = "/",
    scheme: str = "http",
    cpus: str | None = None,
    extra: Sequence[str] = (),
) -> Result:
    """wrk with one thread on ``cpus`` (default LOAD_CPUS); ``extra``: more of its
    arguments (``-s script.lua``)."""
    wrk = ensure_wrk()
    cmd = [
        "taskset",
        "-c",
        cpus or LOAD_CPUS,
        wrk,
        "--latency",
        "-t",
        "1",
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        *extra,
        f"{scheme}://127.0.0.1:{port}{path}",  # wrk speaks TLS (OpenSSL), unverified
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    match = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99 = float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if errors:
        print(f"  wrk reported: {errors.group(0)}", file=sys.stderr)
    count = re.search(r"(\d+) requests in", out)
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)([KMG]?B)", out)
    mib_s = float(transfer.group(1)) * _BYTES[transfer.group(2)] if transfer else float("nan")
    return Result(rps, p99, requests=int(count.group(1)) if count else 0, transfer_mib_s=mib_s)


def start_server(
    cmd: Sequence[str], port: int, cpus: str | None = None
) -> subprocess.Popen[bytes]:
    """``cmd`` pinned to ``cpus`` (default SERVER_CPUS), once it listens on ``port``."""
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + ROOT)
    proc = subprocess.Popen(
        ["taskset", "-c", cpus or SERVER_CPUS, *cmd],
        cwd=HERE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_for_port(port, proc)
    except RuntimeError:
        stop_server(proc)
        raise
    return proc


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def measure(
    cmd: Sequence[str],
    port: int,
    seconds: int,
    connections: int,
    idle: int = 0,
    scheme: str = "http",
    cpus: tuple[str, str] | None = None,
) -> Result:
    """Start the server, warm it up, run wrk; ``idle`` keep-alive clients sit open meanwhile.

    ``scheme`` "https" runs wrk over TLS (``idle`` clients are plain HTTP only).
    ``cpus``: (the server's, wrk's) CPU lists, instead of SERVER_CPUS and LOAD_CPUS.
    """
    server_cpus, load_cpus = cpus or (None, None)
    proc = start_server(cmd, port, server_cpus)
    held: list[socket.socket] = []
    try:
        for _ in range(idle):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            held.append(sock)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
            if not sock.recv(4096).startswith(b"HTTP/1.1 200"):
                raise RuntimeError("an idle connection's first request failed")
        run_wrk(port, 1, connections, scheme=scheme, cpus=load_cpus)  # warm-up
        cpu_before = cpu_seconds(proc.pid)
        result = run_wrk(port, seconds, connections, scheme=scheme, cpus=load_cpus)
        result.cpu_s = cpu_seconds(proc.pid) - cpu_before
        result.rss_kib = rss_kib(proc.pid)
        return result
    finally:
        stop_server(proc)
        for sock in held:
            sock.close()


def print_table(title: str, series: Sequence[Series], baseline: str, machine: str = "") -> None:
    base = next(s for s in series if s.name == baseline)
    print(f"\n{title}  ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs{machine})")
    print(f"| server | requests/s | p99 ms | RSS MiB | ratio to {baseline} |")
    print("|---|---:|---:|---:|---:|")
    for s in series:
        print(
            f"| {s.name} | {s.rps:,.0f} | {s.p99:.2f} | {s.rss_mib:.1f} | {s.rps / base.rps:.2f}x |"
        )


def run_rounds(
    commands: Callable[[int], dict[str, list[str]]],
    rounds: int,
    seconds: int,
    connections: int,
    measure_one: Callable[[list[str], int, int, int], Result] | None = None,
) -> dict[str, Series]:
    """Measure every server of ``commands(port)`` once per round, rotating the order.

    Each round starts with a different server, so that drift in a shared
    machine's load falls on all of them alike; medians come from ``Series``.
    """
    run = measure_one or measure
    names = list(commands(0))
    series = {name: Series(name) for name in names}
    for round_no in range(rounds):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            port = free_port()
            result = run(commands(port)[name], port, seconds, connections)
            series[name].results.append(result)
            print(
                f"round {round_no + 1} {name}: {result.rps:,.0f}/s, p99 {result.p99_ms:.2f} ms, "
                f"RSS {result.rss_kib / 1024:.1f} MiB",
                file=sys.stderr,
            )
    return series


def qactuar_command(app: str, port: int, model: str, *extra: str) -> list[str]:
    """qactuar serving ``app`` on 127.0.0.1:``port``, access log off."""
    return [
        sys.executable, "-m", "qactuar", app, "--model", model, "--host", "127.0.0.1",
        "--port", str(port), "--no-access-log", "--log-level", "warning", *extra,
    ]  # fmt: skip


def uvicorn_command(app: str, port: int, *extra: str) -> list[str]:
    """uvicorn at its fastest (httptools, uvloop) on 127.0.0.1:``port``, access log off."""
    return [
        sys.executable, "-m", "uvicorn", app, "--http", "httptools", "--loop", "uvloop",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level",
        "warning", *extra,
    ]  # fmt: skip
