"""Chapter 6.5-6.23: the UTF-8 decoder sequences of Autobahn's ``case6_x_x.py``.

From Markus Kuhn's UTF-8-test.txt, grouped as Autobahn groups them; group n
becomes cases 6.(n+5).1, 6.(n+5).2, ... in this order.
"""

from __future__ import annotations

VALID_TEXT = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"  # "κόσμε"


def _valid(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _noncharacters() -> list[tuple[bool, bytes]]:
    found = [(True, b"\xef\xbf\xbe"), (True, b"\xef\xbf\xbf")]
    for z1 in (0xF0, 0xF1, 0xF2, 0xF3, 0xF4):
        for z2 in (0x8F, 0x9F, 0xAF, 0xBF):
            if z1 == 0xF4 and z2 != 0x8F:
                continue  # above U+10FFFF
            for z3 in (0xBE, 0xBF):
                seq = bytes([z1, z2, 0xBF, z3])
                if seq not in (b"\xf0\x8f\xbf\xbe", b"\xf0\x8f\xbf\xbf"):  # overlong
                    found.append((True, seq))
    return found


_MISSING = [b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xf8\x80\x80\x80", b"\xfc\x80\x80\x80\x80",
            b"\xdf", b"\xef\xbf", b"\xf7\xbf\xbf", b"\xfb\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf"]
_LONELY = [(0xC0, 0xDF), (0xE0, 0xEF), (0xF0, 0xF7), (0xF8, 0xFB), (0xFC, 0xFD)]


def sequences() -> list[tuple[str, list[tuple[bool, bytes]]]]:
    """(group title, [(valid, payload), ...]) in Autobahn's order."""
    hello = [b"hello\x24world", b"hello\xc2\xa2world", b"hello\xe2\x82\xacworld",
             b"hello\xf0\xa4\xad\xa2world", VALID_TEXT]
    prefixes = [VALID_TEXT[:i] for i in range(1, len(VALID_TEXT) + 1)]
    bad = False
    return [
        ("Some valid UTF-8 sequences", [(True, s) for s in hello]),
        ("All prefixes of a valid UTF-8 string that contains multi-byte code points",
         [(_valid(s), s) for s in prefixes]),
        ("First possible sequence of a certain length",
         [(True, s) for s in (b"\x00", b"\xc2\x80", b"\xe0\xa0\x80", b"\xf0\x90\x80\x80")]),
        ("First possible sequence length 5/6 (invalid codepoints)",
         [(bad, b"\xf8\x88\x80\x80\x80"), (bad, b"\xfc\x84\x80\x80\x80\x80")]),
        ("Last possible sequence of a certain length",
         [(True, s) for s in (b"\x7f", b"\xdf\xbf", b"\xef\xbf\xbf", b"\xf4\x8f\xbf\xbf")]),
        ("Last possible sequence length 4/5/6 (invalid codepoints)",
         [(bad, s) for s in (b"\xf7\xbf\xbf\xbf", b"\xfb\xbf\xbf\xbf\xbf",
                             b"\xfd\xbf\xbf\xbf\xbf\xbf")]),
        ("Other boundary conditions",
         [(True, b"\xed\x9f\xbf"), (True, b"\xee\x80\x80"), (True, b"\xef\xbf\xbd"),
          (True, b"\xf4\x8f\xbf\xbf"), (bad, b"\xf4\x90\x80\x80")]),
        ("Unexpected continuation bytes",
         [(bad, s) for s in (b"\x80", b"\xbf", b"\x80\xbf", b"\x80\xbf\x80",
                             b"\x80\xbf\x80\xbf", b"\x80\xbf\x80\xbf\x80",
                             b"\x80\xbf\x80\xbf\x80\xbf", bytes(range(0x80, 0xBF)))]),
        ("Lonely start characters",
         [(bad, b"".join(bytes([i, 0x20]) for i in range(a, b))) for a, b in _LONELY]),
        ("Sequences with last continuation byte missing", [(bad, s) for s in _MISSING]),
        ("Concatenation of incomplete sequences", [(bad, b"".join(_MISSING))]),
        ("Impossible bytes", [(bad, s) for s in (b"\xfe", b"\xff", b"\xfe\xfe\xff\xff")]),
        ("Examples of an overlong ASCII character",
         [(bad, s) for s in (b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf",
                             b"\xf8\x80\x80\x80\xaf", b"\xfc\x80\x80\x80\x80\xaf")]),
        ("Maximum overlong sequences",
         [(bad, s) for s in (b"\xc1\xbf", b"\xe0\x9f\xbf", b"\xf0\x8f\xbf\xbf",
                             b"\xf8\x87\xbf\xbf\xbf", b"\xfc\x83\xbf\xbf\xbf\xbf")]),
        ("Overlong representation of the NUL character",
         [(bad, s) for s in (b"\xc0\x80", b"\xe0\x80\x80", b"\xf0\x80\x80\x80",
                             b"\xf8\x80\x80\x80\x80", b"\xfc\x80\x80\x80\x80\x80")]),
        ("Single UTF-16 surrogates",
         [(bad, s) for s in (b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf",
                             b"\xed\xb0\x80", b"\xed\xbe\x80", b"\xed\xbf\xbf")]),
        ("Paired UTF-16 surrogates",
         [(bad, hi + lo) for hi in (b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80",
                                    b"\xed\xaf\xbf")
          for lo in (b"\xed\xb0\x80", b"\xed\xbf\xbf")]),
        ("Non-character code points (valid UTF-8)", _noncharacters()),
        ("Unicode specials (i.e. replacement char)",
         [(True, bytes([0xEF, 0xBF, c])) for c in range(0xB9, 0xC0)]),
    ]
