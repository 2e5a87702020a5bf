"""An app module whose import fails on a missing dependency."""

import no_such_dependency  # type: ignore[import-not-found]  # noqa: F401

app = None
