"""Stop work for clients that went away.

Starlette cancels a streaming response when its client disconnects, but a
plain request keeps running: a model would generate a whole answer nobody
reads, and a queued request would still take its turn. This middleware
watches for ``http.disconnect`` once the request body has been read and
cancels the request's task, so providers see CancelledError and drop it.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


class CancelOnDisconnectMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        watcher: asyncio.Task | None = None
        gone = False
        finished = False

        async def watch() -> None:
            nonlocal gone
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    if not finished:
                        gone = True
                        task.cancel()
                    return

        async def receive_and_watch():
            nonlocal watcher
            message = await receive()
            if watcher is None and message["type"] == "http.request" and not message.get("more_body", False):
                watcher = asyncio.create_task(watch())
            return message

        async def send_and_note(message) -> None:
            nonlocal finished
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive_and_watch, send_and_note)
        except asyncio.CancelledError:
            if not gone:
                raise
            task.uncancel()  # our own cancellation: the client left, nothing to answer
            log.info("client disconnected; request %s %s cancelled", scope["method"], scope["path"])
        finally:
            if watcher is not None:
                watcher.cancel()
