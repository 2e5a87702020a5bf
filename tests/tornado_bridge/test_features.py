"""Tornado features that ride on headers and bodies, through the bridge."""

from __future__ import annotations

import gzip
from pathlib import Path

import httpx
import pytest
import tornado.web

from qactuar.tornado_bridge import wrap

from .servers import Serve

SECRET = "test-secret-not-for-production"


class LoginHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        user = self.get_signed_cookie("user")
        self.write({"user": user.decode() if user else None})

    def post(self) -> None:
        self.set_signed_cookie("user", self.get_argument("name"))
        self.set_cookie("plain", "yes")
        self.write("logged in")


def test_signed_cookies_round_trip_and_tampering_is_refused(serve: Serve) -> None:
    app = wrap([("/login", LoginHandler)], cookie_secret=SECRET)
    with serve(app) as url, httpx.Client(base_url=url) as client:
        assert client.post("/login", data={"name": "ada"}).text == "logged in"
        assert client.get("/login").json() == {"user": "ada"}
        signed = client.cookies["user"]
        forged = signed.replace("YWRh", "Ym9i")  # base64 of "ada" -> "bob"
        assert forged != signed
        client.cookies.set("user", forged)
        assert client.get("/login").json() == {"user": None}


class FormHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write(self.xsrf_token)

    def post(self) -> None:
        self.write("accepted " + self.get_argument("text"))


def test_xsrf_protected_form(serve: Serve) -> None:
    app = wrap([("/form", FormHandler)], xsrf_cookies=True, cookie_secret=SECRET)
    with serve(app) as url, httpx.Client(base_url=url) as client:
        token = client.get("/form").text
        assert client.cookies["_xsrf"]
        refused = client.post("/form", data={"text": "hi"})
        accepted = client.post("/form", data={"text": "hi", "_xsrf": token})
        by_header = client.post("/form", data={"text": "yo"}, headers={"X-Xsrftoken": token})
    assert refused.status_code == 403
    assert accepted.text == "accepted hi"
    assert by_header.text == "accepted yo"


@pytest.fixture
def static_dir(tmp_path: Path) -> Path:
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "data.txt").write_bytes(bytes(range(100)))
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "page.html").write_text(
        "<html><head></head><body><h1>{{ title }}</h1>{% module Badge(name) %}"
        "<a href=\"{{ static_url('data.txt') }}\">x</a></body></html>"
    )
    return tmp_path


def test_static_file_ranges_etag_and_304(serve: Serve, static_dir: Path) -> None:
    app = wrap([], static_path=str(static_dir / "static"))
    with serve(app) as url, httpx.Client(base_url=url) as client:
        whole = client.get("/static/data.txt")
        assert whole.status_code == 200
        assert whole.content == bytes(range(100))
        etag = whole.headers["etag"]
        ranged = client.get("/static/data.txt", headers={"Range": "bytes=10-19"})
        suffix = client.get("/static/data.txt", headers={"Range": "bytes=-5"})
        unsatisfiable = client.get("/static/data.txt", headers={"Range": "bytes=200-300"})
        not_modified = client.get("/static/data.txt", headers={"If-None-Match": etag})
        head = client.head("/static/data.txt")
    assert ranged.status_code == 206
    assert ranged.content == bytes(range(10, 20))
    assert ranged.headers["content-range"] == "bytes 10-19/100"
    assert suffix.content == bytes(range(95, 100))
    assert unsatisfiable.status_code == 416
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert head.headers["content-length"] == "100"
    assert head.content == b""


class Badge(tornado.web.UIModule):
    def render(self, name: str) -> str:
        return f"<span class='badge'>{tornado.escape.xhtml_escape(name)}</span>"

    def embedded_css(self) -> str:
        return ".badge { color: red }"


class PageHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.render("page.html", title="Hello <there>", name="ada")


def test_templates_ui_modules_and_static_url(serve: Serve, static_dir: Path) -> None:
    app = wrap(
        [("/page", PageHandler)],
        template_path=str(static_dir / "templates"),
        static_path=str(static_dir / "static"),
        ui_modules={"Badge": Badge},
    )
    with serve(app) as url:
        page = httpx.get(f"{url}/page").text
    assert "<h1>Hello &lt;there&gt;</h1>" in page
    assert "<span class='badge'>ada</span>" in page
    assert 'href="/static/data.txt?v=' in page
    assert ".badge { color: red }" in page  # the module's CSS, put in <head>


class BigTextHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.write("tornado " * 1000)


def test_compress_response_gzips_for_clients_that_accept_it(serve: Serve) -> None:
    app = wrap([("/", BigTextHandler)], compress_response=True)
    with serve(app) as url, httpx.Client() as client:
        zipped = client.get(f"{url}/", headers={"Accept-Encoding": "gzip"})
        plain = client.get(f"{url}/", headers={"Accept-Encoding": "identity"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) < 200
    assert zipped.text == "tornado " * 1000  # httpx decodes it
    assert "content-encoding" not in plain.headers
    assert plain.text == "tornado " * 1000


class BodyInfoHandler(tornado.web.RequestHandler):
    def post(self) -> None:
        files = {
            name: [(f.filename, f.content_type, f.body.decode()) for f in infos]
            for name, infos in self.request.files.items()
        }
        self.write(
            {
                "files": files,
                "fields": {k: self.get_body_arguments(k) for k in self.request.body_arguments},
                "body_length": len(self.request.body),
                "consumed": self.request.headers.get("X-Consumed-Content-Encoding"),
            }
        )


def test_multipart_uploads_land_in_request_files(serve: Serve) -> None:
    with serve(wrap([("/", BodyInfoHandler)])) as url:
        response = httpx.post(
            f"{url}/",
            data={"title": "two files"},
            files=[
                ("doc", ("a.txt", b"first file", "text/plain")),
                ("doc", ("b.csv", b"x,y", "text/csv")),
            ],
        )
    result = response.json()
    assert result["files"] == {
        "doc": [["a.txt", "text/plain", "first file"], ["b.csv", "text/csv", "x,y"]]
    }
    assert result["fields"] == {"title": ["two files"]}


def test_decompress_request(serve: Serve) -> None:
    app = wrap([("/", BodyInfoHandler)], decompress_request=True)
    form = b"a=1&b=" + b"z" * 5000
    with serve(app) as url:
        response = httpx.post(
            f"{url}/",
            content=gzip.compress(form),
            headers={
                "Content-Encoding": "gzip",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        broken = httpx.post(f"{url}/", content=b"not gzip", headers={"Content-Encoding": "gzip"})
    result = response.json()
    assert result["body_length"] == len(form)
    assert result["fields"]["a"] == ["1"]
    assert result["consumed"] == "gzip"
    assert broken.status_code == 400


class WhoHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write(
            {
                "remote_ip": self.request.remote_ip,
                "protocol": self.request.protocol,
                "host": self.request.host,
                "full_url": self.request.full_url(),
            }
        )


FORWARDED = {"X-Forwarded-For": "203.0.113.7, 10.0.0.1", "X-Forwarded-Proto": "https"}


def test_request_identity_comes_from_the_scope(serve: Serve) -> None:
    with serve(wrap([("/who", WhoHandler)])) as url:
        plain = httpx.get(f"{url}/who?a=1").json()
        ignored = httpx.get(f"{url}/who", headers=FORWARDED).json()
    port = url.rsplit(":", 1)[1]
    assert plain == {
        "remote_ip": "127.0.0.1",
        "protocol": "http",
        "host": f"127.0.0.1:{port}",
        "full_url": f"http://127.0.0.1:{port}/who?a=1",
    }
    # Without xheaders, forwarding headers are not trusted.
    assert ignored["remote_ip"] == "127.0.0.1"
    assert ignored["protocol"] == "http"


def test_xheaders_and_trusted_downstream(serve: Serve) -> None:
    with serve(wrap([("/who", WhoHandler)], xheaders=True)) as url:
        last_hop = httpx.get(f"{url}/who", headers=FORWARDED).json()
        real_ip = httpx.get(f"{url}/who", headers={"X-Real-Ip": "198.51.100.2"}).json()
        bogus = httpx.get(f"{url}/who", headers={"X-Forwarded-For": "not an ip"}).json()
    assert last_hop["remote_ip"] == "10.0.0.1"
    assert last_hop["protocol"] == "https"
    assert last_hop["full_url"].startswith("https://")
    assert real_ip["remote_ip"] == "198.51.100.2"
    assert bogus["remote_ip"] == "127.0.0.1"
    trusted = wrap([("/who", WhoHandler)], xheaders=True, trusted_downstream=["10.0.0.1"])
    with serve(trusted) as url:
        skipped = httpx.get(f"{url}/who", headers=FORWARDED).json()
    assert skipped["remote_ip"] == "203.0.113.7"


def test_static_file_outside_root_is_refused(serve: Serve, static_dir: Path) -> None:
    app = wrap([], static_path=str(static_dir / "static"))
    (static_dir / "secret.txt").write_text("secret")
    with serve(app) as url:
        response = httpx.get(f"{url}/static/%2E%2E/secret.txt")
    assert response.status_code in (403, 404)
    assert "secret" not in response.text
