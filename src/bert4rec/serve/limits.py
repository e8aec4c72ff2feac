"""An ASGI middleware that refuses request bodies over a size limit with 413."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodySizeLimit:
    """413 for a declared Content-Length over `max_bytes`, and for a streamed body that grows
    past it (raised while the handler reads the body, so FastAPI turns it into a 413)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            response = JSONResponse({"detail": self._message()}, status_code=413)
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, detail=self._message())
            return message

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return (
            f"request body is larger than {self.max_bytes} bytes; send a shorter history "
            "(set BERT4REC_SERVE_MAX_BODY_BYTES to raise the limit)"
        )
