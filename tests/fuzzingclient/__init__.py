"""Autobahn-equivalent WebSocket conformance client (see run.py)."""
