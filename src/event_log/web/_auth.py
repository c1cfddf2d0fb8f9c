"""Who may read the event log over the web: the holder of one token.

``create_app(token=...)`` applies :class:`TokenAuth` to the router's routes as
an ``include_router`` dependency, so the router itself stays mountable without
it. A client proves it holds the token in one of two ways:

* ``Authorization: Bearer <token>``: the JSON API and the SSE stream;
* the session cookie that ``POST /login`` sets after the login form: the page,
  and the API and stream calls its script makes (same origin).

The cookie holds ``HMAC-SHA256(token, "event-log session")``, never the token
itself, so a cookie read from a browser profile is not the token that opens the
API elsewhere; changing the token signs everyone out. It is HttpOnly (no
script reads it), SameSite=Strict (no other site's page sends it) and Secure
on https. Every comparison is constant-time (``hmac.compare_digest``). The
token is never put into a URL, a log line, an error message or the OpenAPI
document: there is no ``?token=`` parameter.

Without a credential the API and the stream answer 401 with a JSON
``{"detail": ...}`` and ``WWW-Authenticate: Bearer``; the page answers 401
with the login form.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from ._models import ErrorBody
from ._router import serves_html

__all__ = ["SESSION_COOKIE", "UNAUTHORIZED", "TokenAuth", "check_token"]

SESSION_COOKIE = "event_log_session"
_SESSION_CONTEXT = b"event-log session"
# A login form's body holds one short field; anything longer is not one.
_MAX_LOGIN_BODY = 4096
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="event-log"'}
_DETAIL = (
    "this event log needs its token: send 'Authorization: Bearer <token>', or sign in on the page"
)

UNAUTHORIZED: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "No valid token or session cookie was sent."}
}
"""The 401 answer, for the OpenAPI document of the routes :class:`TokenAuth` guards."""

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="The token the server was started with (`event-log serve --token`).",
)
_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="session",
    description="The session cookie the page's login form sets (POST /login).",
)


def check_token(token: str) -> str:
    """``token`` if a client can send it back, else a one-line ``ValueError``.

    A token travels in an ``Authorization`` header and a form field, so it must
    be visible ASCII without spaces (``secrets.token_urlsafe(32)`` makes one).
    """
    if not isinstance(token, str) or not token:
        raise ValueError("the token must not be empty")
    if not all("!" <= char <= "~" for char in token):
        raise ValueError(
            "the token must be visible ASCII characters without spaces "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


def _base(request: Request) -> str:
    """The app's own path prefix ('' at the root), where the page and /login live."""
    return str(request.scope.get("root_path", "")).rstrip("/")


class _LoginRequired(HTTPException):
    """A request for the page without a credential: the app answers with the login form."""


class TokenAuth:
    """One token's check: a dependency for the router's routes, and the login routes.

    ``Depends(auth)`` refuses a request without the token (bearer) or a session
    cookie made from it; :meth:`install` adds ``GET``/``POST /login``, ``POST
    /logout`` and the handler that shows the page's 401 as the login form.
    """

    def __init__(self, token: str) -> None:
        secret = check_token(token).encode("ascii")
        self._token = secret
        self._session = hmac.new(secret, _SESSION_CONTEXT, hashlib.sha256).hexdigest().encode()

    def _is_token(self, text: str) -> bool:
        return hmac.compare_digest(text.encode("utf-8", "surrogatepass"), self._token)

    def _is_session(self, text: str) -> bool:
        return hmac.compare_digest(text.encode("utf-8", "surrogatepass"), self._session)

    async def __call__(
        self,
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        session: Annotated[str | None, Depends(_cookie)],
    ) -> None:
        """Let the request through with the token or a session cookie; else 401."""
        if bearer is not None and self._is_token(bearer.credentials):
            return
        if session is not None and self._is_session(session):
            return
        if serves_html(request):  # the page: the form, not JSON
            raise _LoginRequired(401, _DETAIL, headers=_CHALLENGE)
        raise HTTPException(401, _DETAIL, headers=_CHALLENGE)

    def install(self, app: FastAPI) -> None:
        """Add the login and logout routes and the login form for a refused page."""
        app.include_router(self._router())
        app.add_exception_handler(_LoginRequired, self._login_required)

    async def _login_required(self, request: Request, exc: Exception) -> Response:
        return _login_form(request, status_code=401)

    def _router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)

        @router.get("/login", response_class=HTMLResponse)
        async def login_form(request: Request) -> Response:
            return _login_form(request)

        @router.post("/login")
        async def login(request: Request) -> Response:
            token = await _form_token(request)
            if token is None or not self._is_token(token):
                return _login_form(request, status_code=401, failed=token is not None)
            base = _base(request)
            response = RedirectResponse(f"{base}/", status_code=303)
            response.set_cookie(
                SESSION_COOKIE,
                self._session.decode(),
                path=base or "/",
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
            return response

        @router.post("/logout")
        async def logout(request: Request) -> Response:
            base = _base(request)
            response = RedirectResponse(f"{base}/login", status_code=303)
            response.delete_cookie(
                SESSION_COOKIE,
                path=base or "/",
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
            return response

        return router


async def _form_token(request: Request) -> str | None:
    """The ``token`` field of an urlencoded form body (None if there is none)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_LOGIN_BODY:
            return None
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=8)
    except ValueError:  # more fields than a login form has
        return None
    values = fields.get("token")
    return values[0] if values else None


_FORM = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>event-log · sign in</title>
<link rel="icon" href="data:,">
<style nonce="{nonce}">
body {{ font: 15px/1.4 system-ui, sans-serif; margin: 12vh auto; max-width: 22rem; }}
input, button {{ font: inherit; padding: .4rem .5rem; }}
input {{ width: 100%; box-sizing: border-box; margin: .3rem 0 .8rem; }}
.failed {{ color: #b00020; }}
</style>
</head>
<body>
<h1>event-log</h1>
<form method="post" action="{action}">
<label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
{message}<button type="submit">Sign in</button>
</form>
</body>
</html>
"""


def _login_form(request: Request, *, status_code: int = 200, failed: bool = False) -> Response:
    """The login form: a plain POST, no script, under a CSP that allows none."""
    nonce = secrets.token_urlsafe(16)
    message = '<p class="failed">That token is not right.</p>\n' if failed else ""
    body = _FORM.format(
        nonce=nonce, action=html.escape(f"{_base(request)}/login", quote=True), message=message
    )
    csp = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; img-src data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    headers = {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
    if status_code == 401:
        headers |= _CHALLENGE
    return HTMLResponse(body, status_code=status_code, headers=headers)
