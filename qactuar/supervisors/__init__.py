"""Processes that run the server as a child of their own (``--reload``)."""
