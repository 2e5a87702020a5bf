"""A legacy Tornado application, unchanged but for one line, served by qactuar.

It has what years-old Tornado code has: handlers with path arguments, a
template page, a login with a signed cookie, a form protected by xsrf, a
``@stream_request_body`` upload, a ``StaticFileHandler`` and a
``WebSocketHandler`` chat room. Under Tornado it ran with::

    make_app().listen(8888); IOLoop.current().start()

Under qactuar, ``qactuar_config.json`` mounts ``examples.tornado_app:application``
at ``/legacy``; qactuar's loader sees a Tornado ``Application`` and wraps it
with ``qactuar.tornado_bridge.wrap()``. Tornado sees the full path, so the
URL rules are written for ``/legacy`` (``PREFIX``) and ``reverse_url`` and
``static_url`` give links that work behind the mount.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import tornado.escape
import tornado.web
import tornado.websocket

PREFIX = "/legacy"
HERE = os.path.dirname(os.path.abspath(__file__))
#: A demo secret; a real deployment reads its own from the environment.
COOKIE_SECRET = os.environ.get("LEGACY_COOKIE_SECRET", "qactuar-example-not-a-secret")


class BaseHandler(tornado.web.RequestHandler):
    def get_current_user(self) -> str | None:
        user = self.get_signed_cookie("user")
        return user.decode() if user else None


class HomeHandler(BaseHandler):
    def get(self) -> None:
        self.render("home.html", user=self.current_user, prefix=PREFIX)


class GreetHandler(BaseHandler):
    def get(self, name: str) -> None:
        self.write({"greeting": f"Hello, {name}!", "user": self.current_user})


class LoginHandler(BaseHandler):
    def get(self) -> None:
        self.render("login.html", error=None)

    def post(self) -> None:
        name = self.get_body_argument("name", "").strip()
        if not name.isalnum():
            self.set_status(400)
            self.render("login.html", error="Letters and digits only, please.")
            return
        self.set_signed_cookie("user", name)
        self.redirect(self.reverse_url("notes"))


class LogoutHandler(BaseHandler):
    def post(self) -> None:
        self.clear_cookie("user")
        self.redirect(self.reverse_url("home"))


NOTES: list[tuple[str, str]] = []


class NotesHandler(BaseHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        self.render("notes.html", notes=NOTES, user=self.current_user)

    @tornado.web.authenticated
    def post(self) -> None:
        text = self.get_body_argument("text", "").strip()
        if text:
            NOTES.append((self.current_user or "?", text))
        self.redirect(self.reverse_url("notes"))


@tornado.web.stream_request_body
class UploadHandler(BaseHandler):
    """Hashes an upload of any size as it streams in, never holding it whole."""

    def prepare(self) -> None:
        self.size = 0
        self.digest = hashlib.sha256()

    def data_received(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.digest.update(chunk)

    def put(self) -> None:
        self.write({"bytes": self.size, "sha256": self.digest.hexdigest()})

    post = put


class ChatRoom(tornado.websocket.WebSocketHandler):
    members: set[ChatRoom] = set()

    def open(self, room: str) -> None:
        self.room = room
        ChatRoom.members.add(self)

    def on_message(self, message: str | bytes) -> None:
        text = message if isinstance(message, str) else message.decode("utf-8", "replace")
        for member in list(ChatRoom.members):
            if member.room == self.room:
                member.write_message({"room": self.room, "text": text})

    def on_close(self) -> None:
        ChatRoom.members.discard(self)


class ChatPageHandler(BaseHandler):
    def get(self, room: str) -> None:
        self.render("chat.html", room=room, prefix=PREFIX)


def make_app(prefix: str = PREFIX, **settings: Any) -> tornado.web.Application:
    return tornado.web.Application(
        [
            tornado.web.url(prefix + r"/?", HomeHandler, name="home"),
            tornado.web.url(prefix + r"/greet/([^/]+)", GreetHandler, name="greet"),
            tornado.web.url(prefix + r"/login", LoginHandler, name="login"),
            tornado.web.url(prefix + r"/logout", LogoutHandler, name="logout"),
            tornado.web.url(prefix + r"/notes", NotesHandler, name="notes"),
            tornado.web.url(prefix + r"/upload", UploadHandler, name="upload"),
            tornado.web.url(prefix + r"/chat/(\w+)", ChatPageHandler, name="chat"),
            tornado.web.url(prefix + r"/ws/(\w+)", ChatRoom, name="chat_ws"),
        ],
        template_path=os.path.join(HERE, "templates"),
        static_path=os.path.join(HERE, "static"),
        static_url_prefix=prefix + "/static/",
        cookie_secret=COOKIE_SECRET,
        xsrf_cookies=True,
        login_url=prefix + "/login",
        **settings,
    )


#: What qactuar_config.json mounts (qactuar wraps it with the bridge).
application = make_app()

if __name__ == "__main__":  # the way it ran before qactuar
    import tornado.ioloop

    application.listen(8888)
    tornado.ioloop.IOLoop.current().start()
