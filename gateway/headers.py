"""Security headers on every response, and Secure cookies on requests that came over HTTPS.

    SecurityHeaders(app, secure_cookies=False)   ASGI middleware around the dashboard app

No page of the dashboard may be framed (clickjacking of the override form): `X-Frame-Options`
and CSP `frame-ancestors` both say so, for old and new browsers. `X-Content-Type-Options:
nosniff` keeps a browser from running a snapshot or CSV as script; `Referrer-Policy:
same-origin` keeps inspection addresses out of other sites' logs. A cookie gets `Secure` when the
request arrived over HTTPS: the scheme is the connection's, or a trusted proxy's
`X-Forwarded-Proto` (see `http.trusted_proxies`); `http.secure_cookies` forces it always.

It is pure ASGI (not Starlette's BaseHTTPMiddleware), so streamed responses such as the live
pages' server-sent events pass through unbuffered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
"""Added to every HTTP response that does not set the header itself."""


class SecurityHeaders:
    """Add SECURITY_HEADERS to every response; mark cookies Secure over HTTPS (or always)."""

    def __init__(self, app: ASGIApp, *, secure_cookies: bool = False):
        self.app = app
        self.secure_cookies = secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        secure = self.secure_cookies or scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_security_headers(message.get("headers", []), secure)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def with_security_headers(
    headers: list[tuple[bytes, bytes]], secure_cookies: bool
) -> list[tuple[bytes, bytes]]:
    """The response's headers plus SECURITY_HEADERS, its cookies Secure when `secure_cookies`."""
    out = [
        (name, _secure(value) if secure_cookies and name.lower() == b"set-cookie" else value)
        for name, value in headers
    ]
    present = {name.lower() for name, _ in out}
    return out + [(name, value) for name, value in SECURITY_HEADERS if name not in present]


def _secure(cookie: bytes) -> bytes:
    attributes = {part.strip().lower() for part in cookie.split(b";")[1:]}
    return cookie if b"secure" in attributes else cookie + b"; Secure"
