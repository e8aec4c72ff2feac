"""An ASGI middleware that adds security headers to every HTTP response.

The page and its static files get a Content-Security-Policy that allows only this origin's own
scripts, styles and requests (the page has no inline script or style), so injected markup
could run nothing. Every response gets `X-Content-Type-Options: nosniff` (a file is only ever
what its content type says), `X-Frame-Options: DENY` (no framing, so no clickjacking) and
`Referrer-Policy: no-referrer`. The API's docs page (/docs) loads Swagger UI from this origin
too (`/docs-assets`, the fastapi-offline package) but starts it with an inline script, so it
keeps no CSP.

It is the outermost layer, so it also answers for a bug below it: an exception that escapes
the app becomes a 500 with a one-line JSON body (and the headers), and the traceback goes to
the log, where Starlette's own error page would have gone out without them.
"""

from __future__ import annotations

import logging

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
EVERY_RESPONSE = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
DOCS_PAGES = frozenset({"/docs", "/docs/oauth2-redirect"})  # exactly: /docs-assets/ gets it


class SecurityHeaders:
    """Adds `EVERY_RESPONSE` to each response, and the CSP outside FastAPI's docs pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = scope["path"] not in DOCS_PAGES
        started = False

        async def with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in EVERY_RESPONSE.items():
                    headers[name] = value
                if policy:
                    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
            await send(message)

        try:
            await self.app(scope, receive, with_headers)
        except Exception:
            log.exception("%s %s failed", scope.get("method"), scope["path"])
            if started:  # too late for another answer: the connection is closed
                raise
            failed = JSONResponse({"detail": "internal error; the server log has the details"},
                                  status_code=500)
            await failed(scope, receive, with_headers)
