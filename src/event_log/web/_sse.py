"""The SSE response of one stream client: the hub's frames to its socket, and its end.

A plain ASGI response rather than Starlette's ``StreamingResponse``, for two
things that one cannot do: stop a write that a client is not reading (the hub
cuts off a client that fell too far behind, or the server is stopping), and
then still try to send the last message, for a bounded time, before letting go
of the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ._fanout import StreamHub
from ._subscription import Subscription

__all__ = ["RETRY_MS", "StreamResponse"]

# The browser's wait before reconnecting a dropped stream, in milliseconds.
RETRY_MS = 2000


class StreamResponse(Response):
    """Sends ``sub``'s opening message, its frames as they come, then its last message."""

    # None, as on StreamingResponse, so the API document shows its errors as JSON
    # (the route declares the stream's own type).
    media_type = None

    def __init__(self, hub: StreamHub, sub: Subscription, status_code: int = 200) -> None:
        super().__init__(
            status_code=status_code,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        # A stream has no length: Response would declare the empty body's (0).
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self._hub = hub
        self._sub = sub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sub = self._sub
        gone = asyncio.Event()
        watcher = asyncio.ensure_future(_watch_disconnect(receive, sub, gone))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            head = "" if sub.start_position is None else f"id: {sub.start_position}\n"
            opening = f"retry: {RETRY_MS}\n{head}: connected\n\n".encode()
            if await _send_body(send, sub, opening):
                while (chunk := await sub.next()) is not None:
                    if not await _send_body(send, sub, chunk):
                        break
                    sub.sent()
            if not gone.is_set():
                # Bounded: a client that is not reading is let go without it.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(sub.ending_wait):
                        await _send_body(send, sub, sub.ending or b"", more=False)
        finally:
            watcher.cancel()
            await self._hub.release(sub)


def _body(data: bytes, *, more: bool = True) -> Any:
    return {"type": "http.response.body", "body": data, "more_body": more}


async def _send_body(send: Send, sub: Subscription, data: bytes, *, more: bool = True) -> bool:
    """Send ``data``; False if the hub stopped the write (the stream is ending)."""
    write = asyncio.ensure_future(send(_body(data, more=more)))
    sub.while_sending(write.cancel)
    try:
        await asyncio.wait({write})
    except asyncio.CancelledError:
        write.cancel()
        raise
    finally:
        sub.while_sending(None)
    if write.cancelled():
        return False
    write.result()  # a server's failure to send is raised, as it would be without us
    return True


async def _watch_disconnect(receive: Receive, sub: Subscription, gone: asyncio.Event) -> None:
    """End the stream when the client goes away (the request has no body to read)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            sub.end(b"", interrupt=True)
            return
