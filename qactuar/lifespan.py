"""Runs the ASGI lifespan protocol against one app.

``LifespanRunner(app, mode).startup()`` sends ``lifespan.startup`` and waits
for the answer; the ``state`` dict it hands the app is what each request's
scope gets a shallow copy of. With ``mode="auto"`` an app that raises before
answering is taken not to support lifespan, as the spec allows; with
``"on"`` that is a failed start-up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .asgi.types import ASGI_VERSION, ASGIApp, Message

__all__ = ["LifespanFailure", "LifespanRunner"]

logger = logging.getLogger("qt_server")


class LifespanFailure(Exception):
    """Startup or shutdown failed; ``reason`` is the app's own message."""

    def __init__(self, name: str, phase: str, reason: str) -> None:
        super().__init__(f"{name}: lifespan {phase} failed: {reason}")
        self.name = name
        self.phase = phase
        self.reason = reason


class LifespanRunner:
    def __init__(
        self,
        app: ASGIApp,
        mode: str = "auto",
        name: str = "app",
        extensions: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        #: The scope's ``extensions`` (qactuar.process_model), if any.
        self.extensions = extensions
        self.mode = mode
        self.name = name
        self.state: dict[str, Any] = {}
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._answer: asyncio.Queue[Message | BaseException | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._supported = True

    async def _main(self) -> None:
        scope: dict[str, Any] = {"type": "lifespan", "asgi": ASGI_VERSION, "state": self.state}
        if self.extensions is not None:
            scope["extensions"] = self.extensions
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            await self._answer.put(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            await self._answer.put(None)

    async def _receive(self) -> Message:
        return await self._to_app.get()

    async def _send(self, message: Message) -> None:
        await self._answer.put(message)

    async def startup(self) -> dict[str, Any]:
        if self.mode == "off":
            return self.state
        self._task = asyncio.get_running_loop().create_task(self._main())
        await self._to_app.put({"type": "lifespan.startup"})
        answer = await self._answer.get()
        if isinstance(answer, BaseException) or answer is None:
            self._supported = False
            if self.mode == "on":
                reason = repr(answer) if answer is not None else "the app returned"
                raise LifespanFailure(self.name, "startup", reason)
            if answer is not None:
                logger.info(
                    "%s does not support lifespan (%r); going on without it", self.name, answer
                )
            return self.state
        if answer["type"] == "lifespan.startup.failed":
            self._supported = False
            raise LifespanFailure(self.name, "startup", str(answer.get("message", "")))
        if answer["type"] != "lifespan.startup.complete":
            raise LifespanFailure(
                self.name, "startup", f"unexpected lifespan message {answer['type']!r}"
            )
        return self.state

    async def shutdown(self) -> None:
        if self.mode == "off" or not self._supported or self._task is None:
            return
        await self._to_app.put({"type": "lifespan.shutdown"})
        answer = await self._answer.get()
        if isinstance(answer, BaseException):
            raise LifespanFailure(self.name, "shutdown", repr(answer))
        if answer is not None and answer["type"] == "lifespan.shutdown.failed":
            raise LifespanFailure(self.name, "shutdown", str(answer.get("message", "")))
        try:
            await asyncio.wait_for(self._task, 5)
        except (TimeoutError, Exception):
            pass
