"""Autobahn|Testsuite's fuzzing client, chapters 1-7, 9, 10, 12, 13, in Python 3.

PyPI's ``autobahntestsuite`` (25.10.1) is Python 2 code on an old autobahn
API and cannot run here unmodified, so its case classes
(``autobahntestsuite/case/*.py``) are ported case by case: the same ids, the
frames they send, what they expect and the verdict rules of ``case.py``.

Where this port differs from a run of Autobahn's own client:

- writes: a ``chopsize``/``sync`` write is one ``sendall`` per piece on a
  TCP_NODELAY socket, where Twisted gives the reactor a turn between pieces;
- delays: Autobahn's ``continueLater`` pauses are ``--pause`` and its
  timeouts (killAfter, closeAfter, the handshake timeouts) are multiplied by
  ``--slack``; ``make autobahn`` uses Autobahn's values (1 and 1);
- verdict: Autobahn reports the events' verdict and the close verdict apart;
  here a case is FAILED when the events are, when the close is FAILED or
  UNCLEAN, or when the server broke the protocol towards the client;
- chapter 12/13 data: Autobahn's files when ``QT_AUTOBAHN_DATA`` names them
  (``make autobahn`` unpacks them), else generated stand-ins;
- no HTML report or wire log: ``--json`` writes every case's result.

A check of the port: against a bare ``websockets`` 17.4 echo server
(``websockets.asyncio.server.serve``) it finds what Autobahn found in
qactuar before ``messages.ServerProtocol`` (7.1.5 FAILED: a close between
fragments answered with 1002) and that library's NON-STRICT 6.4.x (no
fail-fast UTF-8 check), with the same NON-STRICT 3.2-5.15 as qactuar.

``python -m fuzzingclient --help`` (``PYTHONPATH=tests``) runs it.
"""
