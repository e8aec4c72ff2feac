"""An ASGI middleware that lets through only requests carrying the service's bearer token.

Every path but the open ones (`GET /health`, for load balancers' probes) needs
`Authorization: Bearer TOKEN`; anything else gets 401 with `WWW-Authenticate: Bearer`. The
token is compared in constant time (`hmac.compare_digest`), so the time of a refusal says
nothing about how much of a guess was right.
"""

from __future__ import annotations

import hmac

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/health"})


class BearerToken:
    """401 for an HTTP request to a path outside `OPEN_PATHS` without the right token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == b"authorization"),
                     b"")
        if not hmac.compare_digest(given, self.expected):
            response = JSONResponse(
                {"detail": "missing or wrong bearer token: send 'Authorization: Bearer TOKEN'"},
                status_code=401, headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
