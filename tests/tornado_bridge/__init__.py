"""Tests of qactuar.tornado_bridge: real servers, real sockets, real Tornado."""
