"""The app of tests/test_fork_zygote.py: scope types, sleeps, apps that fork a process."""
import asyncio
import json
import os

COUNT = 0


async def _reply(send, body: bytes, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            m = await receive()
            if m["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": m.get("text") or ""})
    path = scope["path"]
    query = scope["query_string"].decode()
    if path == "/scope":
        body = json.dumps({
            "client": type(scope["client"]).__name__,
            "server": type(scope["server"]).__name__,
            "header": type(scope["headers"][0]).__name__,
            "host_in_headers": any(
                h == (b"host", scope["headers"][0][1]) for h in scope["headers"]
            ),
            "tls": scope["extensions"].get("tls") is not None,
        }).encode()
        await _reply(send, body)
    elif path == "/imported":  # the qactuar.admin modules this process holds
        import sys

        names = sorted(name for name in sys.modules if name.startswith("qactuar.admin"))
        await _reply(send, " ".join(names).encode())
    elif path == "/count":  # module state a request changes (never seen by the next)
        global COUNT
        COUNT += 1
        await _reply(send, f"{COUNT} {os.getpid()}".encode())
    elif path == "/pids":
        await _reply(send, f"{os.getpid()} {os.getppid()}".encode())
    elif path == "/sleep":
        await asyncio.sleep(float(query or "1"))
        await _reply(send, b"slept")
    elif path == "/ignore":  # sleeps ignoring a gone client, then answers
        await asyncio.sleep(float(query or "30"))
        await _reply(send, b"late")
    elif path == "/forkcrash":  # a process (as multiprocessing's fork makes), then a crash
        if os.fork() == 0:
            import time
            time.sleep(float(query or "8"))
            os._exit(0)
        os._exit(3)
    elif path == "/forkhang":  # a background process, then a hang (REQUEST_TIMEOUT)
        if os.fork() == 0:
            import time
            time.sleep(float(query or "8"))
            os._exit(0)
        await asyncio.sleep(60)
    else:
        await _reply(send, b"ok")
