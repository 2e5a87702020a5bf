"""The fork model over TLS beside plain HTTP: what TLS costs it per request.

    python benchmarks/fork_tls.py [--rounds 3] [--seconds 5] [--connections 50]

The fork model's parent keeps every connection and relays each request's
ASGI messages to its child over a socketpair (``qactuar/models/relay.py``),
over TLS as over plain HTTP, so the two differ by what TLS costs the parent.
(Until 2026-12-05 a child owned a plain connection's socket, and this
measured the relay against that.) Each round measures
``apps:hello`` with keep-alive connections (so the handshake is paid once per
connection, as with real clients) in four servers, in rotating order: fork
over HTTP and over HTTPS, and async over HTTP and over HTTPS, whose difference
is what TLS alone costs. It prints medians of throughput and of the server's
CPU time per request (every process of the server, from /proc: unlike
throughput, it hardly moves when other work shares the machine), and the
extra CPU microseconds per request (fork's TLS cost against async's). Certificates are
made with ``trustme`` (the test extra) in a temporary directory; wrk speaks
TLS through OpenSSL and does not verify.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

from common import (
    Result,
    ensure_python_packages,
    measure,
    print_table,
    qactuar_command,
    run_rounds,
)


def certificate(directory: str) -> str:
    ensure_python_packages("trustme")
    import trustme

    path = f"{directory}/server.pem"
    trustme.CA().issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        cert = certificate(directory)

        def commands(port: int) -> dict[str, list[str]]:
            common = ("--max-processes", "4", "--keep-alive-timeout", "600")
            tls = ("--ssl-cert-path", cert)
            return {
                "fork http": qactuar_command("apps:hello", port, "fork", *common),
                "fork https": qactuar_command("apps:hello", port, "fork", *common, *tls),
                "async http": qactuar_command("apps:hello", port, "async", *common),
                "async https": qactuar_command("apps:hello", port, "async", *common, *tls),
            }

        def measure_one(cmd: list[str], port: int, seconds: int, connections: int) -> Result:
            scheme = "https" if "--ssl-cert-path" in cmd else "http"
            return measure(cmd, port, seconds, connections, scheme=scheme)

        series = run_rounds(commands, args.rounds, args.seconds, args.connections, measure_one)
    print_table(
        f"hello world, keep-alive, {args.connections} connections, median of {args.rounds}",
        list(series.values()),
        "fork http",
    )

    def cpu(name: str) -> float:
        return statistics.median(r.cpu_us_per_request for r in series[name].results)

    print("\nserver CPU per request (every process of the server, user + system), median:")
    print("| server | CPU us/request |")
    print("|---|---:|")
    for name in series:
        print(f"| {name} | {cpu(name):,.0f} |")
    fork_tls = cpu("fork https") - cpu("fork http")
    async_tls = cpu("async https") - cpu("async http")
    print(f"\nTLS per request, fork model: {fork_tls:+,.0f} us of CPU")
    print(f"TLS per request, async model (TLS alone): {async_tls:+,.0f} us of CPU")
    print(f"fork's TLS cost less async's: {fork_tls - async_tls:+,.0f} us of CPU")


if __name__ == "__main__":
    main()
