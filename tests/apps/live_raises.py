"""An app module whose import raises (a bug at module level)."""

raise RuntimeError("the blog's settings are missing")
