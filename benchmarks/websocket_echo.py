"""WebSocket echo: messages/s over many connections, qactuar async against uvicorn.

    python benchmarks/websocket_echo.py [--rounds 3] [--seconds 5] [--connections 100]
                                        [--size 32] [--no-compression]

Both servers serve ``echo`` below (one process each, access logs off) pinned
to BENCH_SERVER_CPUS (default core 0): qactuar's async model, and uvicorn
with ``--ws websockets`` (httptools, uvloop). The load generator is this
file with ``--client``: one Python process on BENCH_LOAD_CPUS (default core
1) on uvloop, ``--connections`` connections each sending a ``--size``-byte
text and waiting for its echo, over and over for ``--seconds`` (after a 1 s
warm-up). Its WebSocket client is written by hand for the purpose
(``_EchoConnection``: frames built and read directly, permessage-deflate
offered as browsers do unless ``--no-compression``), because the
``websockets`` client saturated its core before either server did: with
it the ratio measured the client. Rounds alternate the servers; medians
are printed, with each server's CPU share during the run and its CPU time
per echoed message.

The servers serve ``apps:echo`` (benchmarks/apps.py).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any, cast

from common import LOAD_CPUS, Result, Series, free_port, rss_kib, start_server, stop_server

# load generator ----------------------------------------------------------------------


class _EchoConnection(asyncio.Protocol):
    """One WebSocket client connection, by hand: a handshake, then masked text frames
    out and frames back, with permessage-deflate when offered and accepted.

    A load generator, not a client library: the masking key is zero (legal on
    the wire, the server cannot tell), replies are checked by their length
    and, when compressed, inflated and compared. It costs a fraction of the
    ``websockets`` client's CPU per message, so the server is what a run
    measures, not the load generator.
    """

    def __init__(self, payload: bytes, compression: bool) -> None:
        self.payload = payload
        self.offer = compression
        self.deflate = False
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.open: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.reply: asyncio.Future[bytes] | None = None
        self._compress = zlib.compressobj(wbits=-15)
        self._inflate = zlib.decompressobj(wbits=-15)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # (uvloop's is no subclass)
        key = base64.b64encode(os.urandom(16))
        offer = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        transport.write(
            b"GET / HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n"
            + (offer if self.offer else b"") + b"\r\n"
        )

    def frame(self) -> bytes:
        data, first = self.payload, 0x81
        if self.deflate:
            data = self._compress.compress(data) + self._compress.flush(zlib.Z_SYNC_FLUSH)
            data, first = data[:-4], 0xC1  # (RSV1: compressed)
        size = len(data)
        if size < 126:
            head = bytes((first, 0x80 | size))
        else:
            head = bytes((first, 0x80 | 126)) + size.to_bytes(2, "big")
        return head + b"\0\0\0\0" + data  # a zero masking key: the payload as it is

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.open.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).lower()
            del buffer[: end + 4]
            if not head.startswith(b"http/1.1 101"):
                self.open.set_exception(RuntimeError(f"handshake refused: {head[:80]!r}"))
                return
            self.deflate = b"permessage-deflate" in head
            self.open.set_result(None)
        while len(buffer) >= 2:
            first, size = buffer[0], buffer[1] & 0x7F
            at = 2
            if size == 126:
                if len(buffer) < 4:
                    return
                size, at = int.from_bytes(buffer[2:4], "big"), 4
            elif size == 127:
                if len(buffer) < 10:
                    return
                size, at = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < at + size:
                return
            payload = bytes(buffer[at : at + size])
            del buffer[: at + size]
            if first & 0x0F != 1:
                continue  # (a ping or a close: not part of the echo)
            if first & 0x40:
                payload = self._inflate.decompress(payload + b"\0\0\xff\xff")
            if self.reply is not None and not self.reply.done():
                self.reply.set_result(payload)

    def connection_lost(self, exc: Exception | None) -> None:
        for future in (self.open, self.reply):
            if future is not None and not future.done():
                future.set_exception(ConnectionError("the server closed the connection"))


async def _client(
    port: int, seconds: float, connections: int, size: int, compression: bool
) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    payload = b"x" * size
    socks: list[_EchoConnection] = []
    for _ in range(connections):
        _, conn = await loop.create_connection(
            lambda: _EchoConnection(payload, compression), "127.0.0.1", port
        )
        await asyncio.wait_for(conn.open, 30)
        socks.append(conn)
    counting = False
    count = 0
    latencies: list[float] = []

    async def echo(conn: _EchoConnection, until: float) -> None:
        nonlocal count
        transport = conn.transport
        assert transport is not None
        while True:
            began = time.perf_counter()
            if began >= until:
                return
            conn.reply = loop.create_future()
            transport.write(conn.frame())
            reply = await conn.reply
            if reply != payload:
                raise RuntimeError(f"echo {reply[:40]!r} is not what was sent")
            if counting:
                count += 1
                if count % 16 == 0:
                    latencies.append(time.perf_counter() - began)

    warm_until = time.perf_counter() + 1
    await asyncio.gather(*(echo(conn, warm_until) for conn in socks))
    counting = True
    began = time.perf_counter()
    cpu = time.process_time()
    until = began + seconds
    await asyncio.gather(*(echo(conn, until) for conn in socks))
    elapsed = time.perf_counter() - began
    cpu = time.process_time() - cpu
    for conn in socks:
        assert conn.transport is not None
        conn.transport.close()
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan")
    return {
        "rate": count / elapsed,
        "p99_ms": p99,
        "messages": count,
        "client_cpu": cpu / elapsed,
        "elapsed": elapsed,
    }


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_client(
    port: int, seconds: float, connections: int, size: int, compression: bool, server_pid: int
) -> tuple[Result, float, float]:
    """The load run's result, the client's CPU share and the server's (during the run)."""
    cmd = [
        "taskset",
        "-c",
        LOAD_CPUS,
        sys.executable,
        os.path.abspath(__file__),
        "--client",
        "--port",
        str(port),
        "--seconds",
        str(seconds),
        "--connections",
        str(connections),
        "--size",
        str(size),
    ]
    if not compression:
        cmd.append("--no-compression")
    server_cpu = cpu_seconds(server_pid)
    began = time.monotonic()
    out = subprocess.run(
        cmd, capture_output=True, text=True, check=True, timeout=seconds + 120
    ).stdout
    server_share = (cpu_seconds(server_pid) - server_cpu) / (time.monotonic() - began)
    data = json.loads(out.strip().splitlines()[-1])
    return Result(data["rate"], data["p99_ms"]), data["client_cpu"], server_share


# servers ----------------------------------------------------------------------------------


def _server_pid(pid: int) -> int:
    """The server process itself (``start_server`` runs it under taskset, which execs)."""
    return pid


def commands(port: int) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "qactuar async": [
            py,
            "-m",
            "qactuar",
            "apps:echo",
            "--model",
            "async",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--no-access-log",
            "--log-level",
            "warning",
            "--lifespan",
            "off",
        ],
        "uvicorn": [
            py,
            "-m",
            "uvicorn",
            "apps:echo",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--ws",
            "websockets",
            "--http",
            "httptools",
            "--loop",
            "uvloop",
            "--no-access-log",
            "--log-level",
            "warning",
            "--lifespan",
            "off",
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--no-compression", action="store_true")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    compression = not args.no_compression
    if args.client:
        run: Callable[..., Any] = asyncio.run
        try:
            import uvloop

            run = uvloop.run
        except ImportError:
            pass
        measured = run(_client(args.port, args.seconds, args.connections, args.size, compression))
        print(json.dumps(measured))
        return
    series: dict[str, Series] = {}
    shares: dict[str, list[tuple[float, float]]] = {}
    for round_no in range(args.rounds):
        names = list(commands(0))
        if round_no % 2:
            names.reverse()
        for name in names:
            port = free_port()
            proc = start_server(commands(port)[name], port)
            try:
                result, client_cpu, server_cpu = run_client(
                    port,
                    args.seconds,
                    args.connections,
                    args.size,
                    compression,
                    _server_pid(proc.pid),
                )
                result.rss_kib = rss_kib(proc.pid)
                shares.setdefault(name, []).append((server_cpu, client_cpu))
            finally:
                stop_server(proc)
            series.setdefault(name, Series(name)).results.append(result)
            print(
                f"round {round_no + 1} {name}: {result.rps:,.0f} messages/s "
                f"p99 {result.p99_ms:.2f} ms, CPU server {server_cpu:.0%} "
                f"client {client_cpu:.0%}",
                file=sys.stderr,
            )
    ordered = [series[n] for n in commands(0)]
    base = ordered[1]
    deflate = "permessage-deflate" if compression else "no compression"
    print(
        f"\nwebsocket echo, {args.size}-byte texts, {args.connections} connections, "
        f"{deflate}, median of {args.rounds} x {args.seconds:g} s  "
        f"({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs)"
    )
    print(
        "| server | messages/s | p99 ms | RSS MiB | server CPU | server CPU µs/message | "
        "client CPU | ratio to uvicorn |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for s in ordered:
        server_cpu = statistics.median(a for a, _ in shares[s.name])
        client_cpu = statistics.median(b for _, b in shares[s.name])
        per_message = statistics.median(
            share / r.rps * 1e6 for (share, _), r in zip(shares[s.name], s.results, strict=True)
        )
        print(
            f"| {s.name} | {s.rps:,.0f} | {s.p99:.2f} | {s.rss_mib:.1f} | {server_cpu:.0%} | "
            f"{per_message:.1f} | {client_cpu:.0%} | {s.rps / base.rps:.2f}x |"
        )
    rounds = [f"{a.rps / b.rps:.2f}" for a, b in zip(ordered[0].results, base.results, strict=True)]
    print(
        f"\nqactuar async / uvicorn: {ordered[0].rps / base.rps:.2f}x "
        f"(per round: {', '.join(rounds)})"
    )


if __name__ == "__main__":
    main()
