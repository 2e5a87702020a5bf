"""WebSocket apps for tests/test_websocket*.py and the browser test (served as 'ws:app').

Routes (websocket scope):
  /echo             accept (subprotocol "chat.v1" if offered, headers x-ws-app: echo and
                    x-pid: the serving process),
                    echo every message as it came (text or bytes)
  /close4001        accept, then close with 4001 "going, bye"; wait for the disconnect
  /closereturn      accept, close with 4003 and return at once
  /closelong        accept, close with 4000 and a 200-byte reason ("é" x 100)
  /deny             denial response: 401 with a body
  /reject           websocket.close before accept (-> 403)
  /hold?flag=PATH   accept, read nothing until PATH exists, then count the binary
                    messages and answer "got N" to the text message "end"
  /crash            raise before accept (-> 500)
  /scope            accept, send the scope (JSON-able parts) as text
  /flood?n=N        accept (header x-pid), send N binary messages of 64 KiB, then "done";
                    with progress=PATH, the count sent so far is written to PATH after each;
                    reports {"sent": count, "error": exception class} if a send fails
  /slowaccept       wait 0.5 s, then accept; reports {"accept": "ok"} or the exception's
                    class and whether it is an OSError, then the disconnect
  /slowaccept?flag=PATH  the same, but instead of 0.5 s: create PATH.in, then wait until
                    PATH exists

Every websocket app writes its websocket.disconnect message as JSON to
$QT_WS_REPORT_DIR/<id>.json, where <id> is the query parameter ``id`` (so a
test in another process learns the close code the app saw). After a
disconnect the app lingers ``linger`` seconds (query parameter) before it
returns, which keeps a fork-model child alive for memory readings, or, with
``release=PATH``, until PATH exists.

HTTP scope: ``/sleep?S`` answers 200 after S seconds.

HTTP scope: ``/?<tag>`` is a page whose script opens a websocket to
``/echo?id=browser-<tag>`` (offering "chat.v1"), sends a short and a 260 kB
text, writes the echoes, extensions, subprotocol and close code into the DOM
and closes with 4000 "page done" (tests/test_browser.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>qactuar websocket</title></head>
<body>
<p id="status">loading</p>
<p id="echo"></p>
<p id="extensions"></p>
<p id="big"></p>
<p id="closed"></p>
<script>
const status = document.getElementById("status");
const big = "compressible ".repeat(20000);
const sock = new WebSocket(`ws://${location.host}/echo?id=browser-${location.search.slice(1)}`,
                           ["chat.v1"]);
let replies = 0;
sock.onopen = () => {
  status.textContent = "open";
  document.getElementById("extensions").textContent =
    "extensions:" + sock.extensions + " protocol:" + sock.protocol;
  sock.send("hello from chromium \\u00e9");
  sock.send(big);
};
sock.onmessage = (event) => {
  replies += 1;
  if (replies === 1) {
    document.getElementById("echo").textContent = "echo:" + event.data;
  } else {
    document.getElementById("big").textContent =
      "big:" + (event.data === big ? "same" : "different") + ":" + event.data.length;
    status.textContent = "echoed";
    sock.close(4000, "page done");
  }
};
sock.onclose = (event) => {
  document.getElementById("closed").textContent = "closed:" + event.code;
};
sock.onerror = () => { status.textContent = "error"; };
</script>
</body></html>
"""


def _query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string", b"").decode("latin-1")
    return {k: v[0] for k, v in parse_qs(raw).items()}


def _report(scope: Scope, message: dict[str, Any]) -> None:
    directory = os.environ.get("QT_WS_REPORT_DIR")
    ident = _query(scope).get("id")
    if not directory or not ident:
        return
    path = os.path.join(directory, f"{ident}.json")
    with open(path + ".tmp", "w", encoding="utf-8") as fh:
        json.dump({"message": message, "pid": os.getpid()}, fh)
    os.replace(path + ".tmp", path)


async def _until_disconnect(scope: Scope, receive: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            _report(scope, message)
            return


async def _echo(scope: Scope, receive: Any, send: Any) -> None:
    chosen = "chat.v1" if "chat.v1" in scope.get("subprotocols", []) else None
    await send({"type": "websocket.accept", "subprotocol": chosen,
                "headers": [(b"x-ws-app", b"echo"), (b"x-pid", str(os.getpid()).encode())]})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            _report(scope, message)
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def _hold(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "websocket.accept"})
    await _until_exists(_query(scope)["flag"])
    count = 0
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            _report(scope, message)
            return
        if message.get("bytes") is not None:
            count += 1
        elif message.get("text") == "end":
            await send({"type": "websocket.send", "text": f"got {count}"})


async def websocket(scope: Scope, receive: Any, send: Any) -> None:
    path = scope["path"]
    message = await receive()
    assert message["type"] == "websocket.connect"
    if path == "/echo":
        await _echo(scope, receive, send)
    elif path == "/close4001":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4001, "reason": "going, bye"})
        await _until_disconnect(scope, receive)
    elif path == "/closereturn":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4003})
    elif path == "/closelong":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4000, "reason": "é" * 100})
        await _until_disconnect(scope, receive)
    elif path == "/deny":
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain"),
                                (b"www-authenticate", b"Bearer")]})
        await send({"type": "websocket.http.response.body", "body": b"no token, ",
                    "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"no socket"})
    elif path == "/reject":
        await send({"type": "websocket.close"})
    elif path == "/hold":
        await _hold(scope, receive, send)
    elif path == "/slowaccept":
        flag = _query(scope).get("flag")
        if flag:
            open(flag + ".in", "w").close()
            await _until_exists(flag)
        else:
            await asyncio.sleep(0.5)
        try:
            await send({"type": "websocket.accept"})
        except Exception as exc:  # the client left while the app was deciding
            _report(scope, {"accept": type(exc).__name__, "oserror": isinstance(exc, OSError)})
            return
        await _until_disconnect(scope, receive)
    elif path == "/scope":
        await send({"type": "websocket.accept"})
        shown = {key: value.decode("latin-1") if isinstance(value, bytes) else value
                 for key, value in scope.items() if key != "headers"}
        shown["headers"] = [[k.decode("latin-1"), v.decode("latin-1")]
                            for k, v in scope["headers"]]
        await send({"type": "websocket.send", "text": json.dumps(shown)})
        await _until_disconnect(scope, receive)
    elif path == "/flood":
        await send({"type": "websocket.accept", "headers": [(b"x-pid", str(os.getpid()).encode())]})
        chunk = os.urandom(65536)
        sent = 0
        try:
            progress = _query(scope).get("progress")
            for _ in range(int(_query(scope)["n"])):
                await send({"type": "websocket.send", "bytes": chunk})
                sent += 1
                if progress:
                    with open(progress + ".tmp", "w") as fh:
                        fh.write(str(sent))
                    os.replace(progress + ".tmp", progress)
            await send({"type": "websocket.send", "text": "done"})
        except OSError as exc:
            _report(scope, {"sent": sent, "error": type(exc).__name__})
            return
        await _until_disconnect(scope, receive)
    elif path == "/crash":
        raise RuntimeError("the app fails before accepting")
    else:
        await send({"type": "websocket.close", "code": 4404})
    linger = float(_query(scope).get("linger", "0"))
    if linger:
        await asyncio.sleep(linger)
    release = _query(scope).get("release")
    if release:
        await _until_exists(release)


async def _until_exists(path: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await websocket(scope, receive, send)
        return
    if scope["type"] != "http":
        return  # lifespan: not supported (LIFESPAN auto carries on)
    if scope["path"] == "/sleep":
        await asyncio.sleep(float(scope["query_string"] or b"1"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"slept"})
        return
    body = PAGE if scope["path"] == "/" else b"not found"
    await send({"type": "http.response.start", "status": 200 if scope["path"] == "/" else 404,
                "headers": [(b"content-type", b"text/html; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
