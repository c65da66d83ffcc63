"""Signing in and out with an accountant (or admin) API key, and the list of the viewer's business codes.

A session is a random token whose SHA-256 is kept in `web_sessions` (`desk.webkit`); sign-in refuses a
cross-site post (login CSRF) and redirects only to a page of this site.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import QueryParameter, URLEncodedBody
from litestar.response import Redirect, Template
from msgspec import Struct

from desk.webkit import (
    COOKIE,
    HEADERS,
    ROLES,
    SESSION_HOURS,
    SignInRequired,
    cross_site,
    ctx_of,
    digest,
    render,
    session_cookie,
    session_key,
    viewer_of,
)
from ledger.errors import Unauthorized
from ledger.tenancy import authenticate, list_businesses

__all__ = ["businesses", "next_page_of", "sign_in", "sign_in_form", "sign_out", "to_sign_in"]


# --- sign-in -------------------------------------------------------------------------------------------
class SignInForm(Struct, kw_only=True):
    key: str = ""
    next: str = ""


def next_page_of(target: str) -> str:
    """Only a page of this site (no `//host`, no scheme): nothing else may be the target of the redirect."""
    return target if target.startswith("/ui/") and not target.startswith("//") and "\\" not in target else "/ui/"


@get("/sign-in")
async def sign_in_form(next_page: Annotated[str, QueryParameter(name="next")] = "/ui/") -> Template:
    return render("sign_in.html", error=None, next=next_page_of(next_page))


@post("/sign-in", status_code=303)
async def sign_in(request: Request[Any, Any, Any], data: URLEncodedBody[SignInForm]) -> Response[Any]:
    ctx = ctx_of(request)
    target = next_page_of(data.next)
    if cross_site(request):  # login CSRF: the victim would be signed in to the attacker's books
        return render("sign_in.html", 403, error="Sign in on this site's own sign-in page.", next="/ui/")
    try:
        principal = await authenticate(ctx, data.key.strip())
    except Unauthorized:
        return render("sign_in.html", 401, error="This key is not valid.", next=target)
    if principal.merchant_id is None or principal.key_id is None or principal.role not in ROLES:
        return render("sign_in.html", 403, error="Sign in with an accountant or admin key.", next=target)
    token = f"{principal.merchant_id}.{secrets.token_urlsafe(32)}"
    async with ctx.pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM web_sessions WHERE expires_at < now()")
        await conn.execute(
            "INSERT INTO web_sessions (merchant_id, session_sha256, key_id, expires_at) "
            "VALUES ($1, $2, $3, now() + make_interval(hours => $4))",
            principal.merchant_id,
            digest(token),
            principal.key_id,
            SESSION_HOURS,
        )
    cookie = session_cookie(request, token, SESSION_HOURS * 3600)
    return Redirect(target, status_code=303, cookies=[cookie], headers=HEADERS)


@post("/sign-out", status_code=303)
async def sign_out(request: Request[Any, Any, Any]) -> Response[Any]:
    if cross_site(request):  # another site may not end the session either
        return render(
            "error.html", 403, http_status=403, title="Not allowed", message="Sign out on this site's own pages.",
            fields=[],
        )  # fmt: skip
    try:
        merchant_id, key = session_key(request.cookies.get(COOKIE))
    except SignInRequired:
        pass
    else:
        await ctx_of(request).pool.execute(
            "DELETE FROM web_sessions WHERE merchant_id = $1 AND session_sha256 = $2", merchant_id, key
        )
    return Redirect("/ui/sign-in", status_code=303, cookies=[session_cookie(request, "", 0)], headers=HEADERS)


@get("/")
async def businesses(request: Request[Any, Any, Any]) -> Template:
    viewer = await viewer_of(request)
    codes = await list_businesses(ctx_of(request), viewer.merchant_id)
    return render("businesses.html", businesses=codes, role=viewer.role)


# --- errors as pages -----------------------------------------------------------------------------------
def to_sign_in(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = "/ui/"
    return Redirect("/ui/sign-in", query_params={"next": next_page_of(target)}, status_code=303, headers=HEADERS)
