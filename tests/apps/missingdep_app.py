"""Imports a missing package whose name starts its own name."""

import missingdep  # type: ignore[import-not-found]  # noqa: F401

app = None
