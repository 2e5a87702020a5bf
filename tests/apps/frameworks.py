"""A Starlette app and a FastAPI app, written as their users write them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route

# -- Starlette -----------------------------------------------------------------


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"starlette home, started={request.state.started}")


async def item(request: Request) -> JSONResponse:
    return JSONResponse({"id": request.path_params["item_id"],
                         "q": request.query_params.get("q")})


async def stream(request: Request) -> StreamingResponse:
    count = int(request.query_params.get("n", "5"))

    async def numbers() -> AsyncIterator[bytes]:
        for i in range(count):
            yield f"line {i}\n".encode()
            await asyncio.sleep(0.01)

    return StreamingResponse(numbers(), media_type="text/plain")


#: Chunks produced by /forever so far; a test checks it stops when the client leaves.
forever_produced = [0]


async def forever(request: Request) -> StreamingResponse:
    async def ticks() -> AsyncIterator[bytes]:
        for i in range(100_000):
            forever_produced[0] += 1
            yield f"tick {i}\n".encode()
            await asyncio.sleep(0.005)

    return StreamingResponse(ticks(), media_type="text/plain")


#: What /long-poll saw: "disconnected" once its client went away.
long_poll_seen: list[str] = []


async def long_poll(request: Request) -> PlainTextResponse:
    for _ in range(500):
        if await request.is_disconnected():
            long_poll_seen.append("disconnected")
            break
        await asyncio.sleep(0.01)
    else:
        long_poll_seen.append("gave up")
    return PlainTextResponse("late")


async def form(request: Request) -> JSONResponse:
    async with request.form() as data:
        upload = data.get("upload")
        result: dict[str, Any] = {"name": data.get("name"), "tags": data.getlist("tag")}
        if upload is not None and not isinstance(upload, str):
            content = await upload.read()
            result["upload"] = {"filename": upload.filename, "size": len(content),
                                "head": content[:10].decode("latin-1")}
    return JSONResponse(result)


async def sub_page(request: Request) -> JSONResponse:
    return JSONResponse({
        "url_for_page": str(request.url_for("sub:page")),
        "url_for_item": str(request.url_for("item", item_id=7)),
        "url_for_home": str(request.url_for("home")),
        "root_path": request.scope["root_path"],
        "path": request.url.path,
    })


@contextlib.asynccontextmanager
async def starlette_lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    yield {"started": True}


starlette_app = Starlette(
    routes=[
        Route("/", home, name="home"),
        Route("/items/{item_id:int}", item, name="item"),
        Route("/stream", stream),
        Route("/forever", forever),
        Route("/long-poll", long_poll),
        Route("/form", form, methods=["POST"]),
        Mount("/sub", routes=[Route("/page", sub_page, name="page")], name="sub"),
    ],
    lifespan=starlette_lifespan,
)


# -- FastAPI -------------------------------------------------------------------

fastapi_app = FastAPI()


class Order(BaseModel):
    item: str
    quantity: int
    price: float


async def current_user(x_token: Annotated[str | None, Header()] = None) -> str:
    if x_token != "secret":
        raise HTTPException(status_code=401, detail="bad token")
    return "alice"


@fastapi_app.middleware("http")
async def add_timing_header(request: Request, call_next: Any) -> Any:
    # a BaseHTTPMiddleware: it wraps receive() and send() of every request
    response = await call_next(request)
    response.headers["x-middleware"] = "seen"
    return response


@fastapi_app.get("/count")
async def count(n: int = 3) -> StreamingResponse:
    async def numbers() -> AsyncIterator[bytes]:
        for i in range(n):
            yield f"{i}\n".encode()
            await asyncio.sleep(0.005)

    return StreamingResponse(numbers(), media_type="text/plain")


@fastapi_app.post("/orders")
async def create_order(order: Order, user: Annotated[str, Depends(current_user)]) -> dict[str, Any]:
    return {"user": user, "item": order.item, "total": order.quantity * order.price}


@fastapi_app.get("/users/{user_id}")
async def get_user(user_id: int, verbose: bool = False) -> dict[str, Any]:
    return {"user_id": user_id, "verbose": verbose}
