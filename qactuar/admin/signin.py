"""The sign-in page: what a browser gets at ``/`` before it has the session cookie.

A plain HTML form that posts the token to ``POST /login`` (urlencoded); the
answer sets the cookie and sends the browser back to ``/``. The page holds
no token, no script and nothing from the request.
"""

from __future__ import annotations

__all__ = ["SIGNIN_PAGE"]

SIGNIN_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>qactuar admin: sign in</title>
<style>
body{font:16px system-ui,sans-serif;max-width:28em;margin:4em auto;padding:0 1em;color:#222}
input{font:inherit;padding:.4em;width:100%;box-sizing:border-box;margin:.5em 0}
button{font:inherit;padding:.4em 1.2em}
</style></head>
<body><h1>qactuar admin</h1>
<form method="post" action="/login">
<label for="token">Admin token (ADMIN_TOKEN, or the token file named in the server's log)</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button>
</form></body></html>
"""
