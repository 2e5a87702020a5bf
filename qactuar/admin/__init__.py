"""The admin socket: an ASGI app (status, metrics, live config, apps,
dashboard) served by the server core in the parent, master or process.

``backend.py`` is the contract between the admin app and a process model;
``figures.py`` the per-request figures every process keeps.
"""
