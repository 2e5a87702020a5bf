"""Cases 9 (limits/performance), 10 (auto-fragmentation), 12 and 13 (permessage-deflate).

After Autobahn's case9_*.py, case10_1_1.py and case12_x_x.py. Chapter 12
and 13 send slices of Autobahn's test data files (``testdata/``: a JSON file,
a bitmap, Faust, an HTML page, a PDF) when ``DATA_DIR`` names that folder;
without it, a generated stand-in of the same kind and size is used (the
verdict rules are the same, the compression ratios are not).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from typing import Any

from .basic import CASES
from .case import FAILED, OK, UNIMPLEMENTED, Case, by_me

DATA_DIR = os.environ.get("QT_AUTOBAHN_DATA", "")
KIB, MIB = 1024, 1024 * 1024


class EchoOnce(Case):
    """9.1-9.6: one big message; OK when its echo has the type and length sent."""

    binary = False
    waitsecs = 10.0

    def start(self) -> None:
        self.expected_close = by_me()
        self.result = f"Did not receive message within {self.waitsecs} seconds."
        self.send()
        self.close_after(self.waitsecs)

    def send(self) -> None:
        raise NotImplementedError

    def on_message(self, payload: bytes, binary: bool) -> None:
        if binary != self.binary:
            self.result = "Echo'ed message type differs."
        elif len(payload) != self.datalen:
            self.result = f"Expected length {self.datalen}, got {len(payload)}."
        else:
            self.behavior, self.result = OK, f"Received message of length {len(payload)}."
        self.p.send_close(1000)

    datalen = 0


def register(ident: str, base: type[Case], **attrs: Any) -> None:
    CASES.append(type("Case" + ident.replace(".", "_"), (base,), {"id": ident, **attrs}))


def _one_frame(self: EchoOnce) -> None:
    payload = b"\x00\xfe\x23\xfa\xf0" if self.binary else b"BAsd7&jh23"
    self.p.send_frame(2 if self.binary else 1, payload, payload_len=self.datalen,
                      chopsize=getattr(self, "chopsize", None))


def _fragmented(self: EchoOnce) -> None:
    payload = (b"\xfe" if self.binary else b"*") * self.datalen
    self.p.send_message(payload, self.binary, fragment_size=self.fragsize)  # type: ignore


for n, (size, wait_text, wait_binary) in enumerate(
        [(64 * KIB, 10, 10), (256 * KIB, 10, 10), (MIB, 100, 10), (4 * MIB, 100, 10),
         (8 * MIB, 100, 100), (16 * MIB, 100, 100)], 1):
    register(f"9.1.{n}", EchoOnce, datalen=size, waitsecs=wait_text, send=_one_frame)
    register(f"9.2.{n}", EchoOnce, datalen=size, waitsecs=wait_binary, binary=True,
             send=_one_frame)
for n, frag in enumerate([64, 256, KIB, 4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, MIB, 4 * MIB],
                         1):
    register(f"9.3.{n}", EchoOnce, datalen=4 * MIB, fragsize=frag, waitsecs=100,
             send=_fragmented)
    register(f"9.4.{n}", EchoOnce, datalen=4 * MIB, fragsize=frag, waitsecs=100, binary=True,
             send=_fragmented)
for n, chop in enumerate([64, 128, 256, 512, 1024, 2048], 1):
    register(f"9.5.{n}", EchoOnce, datalen=MIB, chopsize=chop, waitsecs=1000, send=_one_frame)
    register(f"9.6.{n}", EchoOnce, datalen=MIB, chopsize=chop, waitsecs=1000, binary=True,
             send=_one_frame)


class RoundTrips(Case):
    """9.7/9.8 (and the shape of 12/13): ``count`` messages, each sent after the last echo."""

    binary = False
    size = 0
    count = 1000
    waitsecs = 60.0

    def start(self) -> None:
        self.expected_close = by_me()
        self.result = f"Case did not finish within {self.waitsecs} seconds."
        self.close_after(self.waitsecs)
        self.sent = 0
        self.send_one()

    def next_payload(self) -> bytes:
        return (b"\xfe" if self.binary else b"*") * self.size

    def send_one(self) -> None:
        self.payload = self.next_payload()
        self.sent += 1
        self.send(self.payload)

    def send(self, payload: bytes) -> None:
        self.p.send_frame(2 if self.binary else 1, payload)

    def on_message(self, payload: bytes, binary: bool) -> None:
        if binary != self.binary or payload != self.payload:
            self.behavior = FAILED
            self.result = (f"Echo differs (binary {binary}, length {len(payload)}, "
                           f"sha1 {hashlib.sha1(payload).hexdigest()}).")
            self.p.send_close(1000)
        elif self.sent < self.count:
            self.send_one()
        else:
            self.behavior, self.result = OK, "Ok, received all echo'ed messages in time."
            self.p.send_close(1000)


for binary in (False, True):
    for n, (size, wait) in enumerate([(0, 60), (16, 60), (64, 60), (256, 120), (1024, 240),
                                      (4096, 480)], 1):
        register(f"9.{8 if binary else 7}.{n}", RoundTrips, size=size, waitsecs=wait,
                 binary=binary)


class AutoFragment(Case):
    """10.1.1: a 64 KiB text message sent in 1300-byte frames comes back whole."""

    def start(self) -> None:
        self.payload = b"*" * 65536
        self.expected[OK] = [("message", self.payload, False)]
        self.p.send_message(self.payload, binary=False, fragment_size=1300)
        self.kill_after(10)

    def on_lost(self) -> None:
        super().on_lost()
        if (self.p.tx_frames.get(1), self.p.tx_frames.get(0)) != (1, 50):
            self.behavior = FAILED
            self.result = f"Frames transmitted {self.p.tx_frames} do not match 1 + 50."


register("10.1.1", AutoFragment)

# 12 and 13: permessage-deflate ------------------------------------------------------------------
MSG_SIZES = [(16, 60, 0), (64, 60, 0), (256, 120, 0), (1024, 240, 0), (4096, 480, 0),
             (8192, 480, 0), (16384, 480, 0), (32768, 480, 0), (65536, 480, 0),
             (131072, 480, 0), (8192, 480, 256), (16384, 480, 256), (32768, 480, 256),
             (65536, 480, 256), (131072, 480, 256), (131072, 480, 1024),
             (131072, 480, 4096), (131072, 480, 32768)]
TESTDATA = [("json_data1", "data1.json", False), ("lena512", "lena512.bmp", True),
            ("gutenberg_faust", "pg2229.txt", True), ("html_data1", "data1.html", False),
            ("ooms", "10.1.1.105.5439.pdf", True)]
_loaded: dict[str, bytes] = {}


def stand_in(name: str) -> bytes:
    """Deterministic data of the file's kind when Autobahn's test data is not at hand."""
    rng = random.Random(name)
    if name.endswith(".json"):
        rows = [{"id": i, "name": f"user{rng.randrange(10**6)}", "score": rng.random(),
                 "tags": ["alpha", "beta", "gamma"][: rng.randrange(4)], "text": "naïve café"}
                for i in range(1500)]
        return json.dumps(rows, ensure_ascii=False).encode()
    words = "lorem ipsum dolor sit amet faust mephisto gretchen <p> </p> <div>".split()
    if name.endswith((".txt", ".html")):
        return " ".join(rng.choice(words) for _ in range(40000)).encode()
    return bytes(rng.randrange(256) if rng.random() < 0.3 else 0 for _ in range(260000))


def data(name: str) -> bytes:
    if name not in _loaded:
        path = os.path.join(DATA_DIR, name)
        if DATA_DIR and os.path.exists(path):
            with open(path, "rb") as fh:
                _loaded[name] = fh.read()
        else:
            _loaded[name] = stand_in(name)
    return _loaded[name]


class Deflated(RoundTrips):
    """12.x.y / 13.x.y: ``count`` slices of a test file, compressed, fragmented, echoed."""

    file = "data1.json"
    autofrag = 0

    def start(self) -> None:
        if self.p.deflate is None:
            self.behavior = UNIMPLEMENTED
            self.p.send_close(1000)
            return
        self.text = data(self.file).decode("utf-8") if not self.binary else ""
        self.pointer = 0
        super().start()

    def next_payload(self) -> bytes:
        source: Any = data(self.file) if self.binary else self.text
        start, end = self.pointer, (self.pointer + self.size) % len(source)
        piece = source[start:end] if end > start else source[start:] + source[:end]
        self.pointer = end
        return bytes(piece) if self.binary else str(piece).encode("utf-8")

    def send(self, payload: bytes) -> None:
        self.p.send_message(payload, self.binary, fragment_size=self.autofrag)


def offer(no_context: bool = False, max_bits: int = 0) -> str:
    """autobahn's ``PerMessageDeflateOffer(requestNoContextTakeover, requestMaxWindowBits)``."""
    text = "permessage-deflate; client_no_context_takeover; client_max_window_bits"
    if no_context:
        text += "; server_no_context_takeover"
    if max_bits:
        text += f"; server_max_window_bits={max_bits}"
    return text


OFFERS = [[offer()], [offer(True)], [offer(False, 9)], [offer(False, 15)], [offer(True, 9)],
          [offer(True, 15)], [offer(True, 9), offer(True), offer()]]
for j, (_key, name, binary) in enumerate(TESTDATA, 1):
    for i, (size, wait, frag) in enumerate(MSG_SIZES, 1):
        register(f"12.{j}.{i}", Deflated, size=size, waitsecs=wait, autofrag=frag,
                 binary=binary, file=name, offers=[offer()], limit=wait + 5)
for j, offers in enumerate(OFFERS, 1):
    for i, (size, wait, frag) in enumerate(MSG_SIZES, 1):
        register(f"13.{j}.{i}", Deflated, size=size, waitsecs=wait, autofrag=frag,
                 file="data1.json", offers=offers, limit=wait + 5)
