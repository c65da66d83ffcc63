"""Business profile routes: the letterhead of a business code (ledger.profiles) and its logo."""

from __future__ import annotations

from typing import Any

from litestar import Response, Router, delete, get, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody

from ledger import profiles
from ledger.errors import FieldError, NotFound, UnsupportedMediaType
from ledger.http.auth import ADMIN, READ
from ledger.http.deps import BusinessCodePath, CallDep
from ledger.http.problem_docs import problem_response
from ledger.profile_fields import ProfileIn, ProfileOut
from ledger.profiles import LOGO_BYTES_MAX, LOGO_TYPES, logo_too_large
from ledger.textsafe import parse_ascii_int

__all__ = ["router"]

Code = BusinessCodePath
_LOGO_ERRORS = {
    413: problem_response(413, "logo_too_large: the body is larger than the logo limit (512 KiB)"),
    415: problem_response(415, "unsupported_media_type: the body is not image/png or image/jpeg"),
}
# The route's own body limit stands well above the logo limit, so that an oversized logo reaches the handler and
# gets `logo_too_large` naming the limit rather than the generic 413 `payload_too_large` (the handler reads no
# more than the logo limit and one byte: a larger body is refused before the rest of it is read).
LOGO_ROUTE_BODY_MAX = 4 * LOGO_BYTES_MAX


async def _logo_body(request: Any) -> bytes:
    """The body, at most `LOGO_BYTES_MAX` bytes; 413 `logo_too_large` as soon as the announced length or the
    bytes received pass it."""
    announced = parse_ascii_int(request.headers.get("content-length", ""))
    if announced is not None and announced > LOGO_BYTES_MAX:
        raise logo_too_large(announced)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > LOGO_BYTES_MAX:
            raise logo_too_large(size, at_least=True)
        chunks.append(chunk)
    return b"".join(chunks)


@get("/profile", opt={"roles": READ}, operation_id="getBusinessProfile", tags=["businesses"])
async def read_profile(business_code: Code, call: CallDep) -> ProfileOut:
    return await profiles.get_profile(call.ctx, await call.business(business_code))


@put(
    "/profile",
    opt={"roles": ADMIN},
    operation_id="putBusinessProfile",
    tags=["businesses"],
    summary="The letterhead: legal name, address, VAT id, tax number, register, bank, contact, letter language",
    description="Replaces the whole profile (the logo stays). 422 `profile_invalid` names every wrong field: IBAN "
    "(ISO 13616 country length and mod-97 check digits), BIC (ISO 9362), VAT id (prefix = the address country, the "
    "member state's format and check digits), postcode per country, lengths of every text.",
)
async def write_profile(business_code: Code, data: JSONBody[ProfileIn], call: CallDep) -> ProfileOut:
    return await profiles.put_profile(call.ctx, await call.business(business_code), data)


@get(
    "/profile/logo",
    opt={"roles": READ},
    operation_id="getBusinessLogo",
    tags=["businesses"],
    media_type="image/png",
    responses={200: ResponseSpec(bytes, media_type="image/png", description="the logo (PNG or JPEG)")},
)
async def read_logo(business_code: Code, call: CallDep) -> Response[bytes]:
    logo = await profiles.load_logo(call.ctx, await call.business(business_code))
    if logo is None:
        raise NotFound("logo_not_found", f"business code {business_code} has no logo")
    return Response(logo.data, media_type=logo.media_type, headers={"Cache-Control": "private, max-age=60"})


@put(
    "/profile/logo",
    opt={"roles": ADMIN},
    operation_id="putBusinessLogo",
    tags=["businesses"],
    request_max_body_size=LOGO_ROUTE_BODY_MAX,
    responses=_LOGO_ERRORS,
    summary="Upload the logo printed on letters: the body is a PNG or JPEG (at most 512 KiB, 2000 x 2000 pixels)",
)
async def write_logo(business_code: Code, call: CallDep) -> ProfileOut:
    business = await call.business(business_code)
    media_type = call.request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type not in LOGO_TYPES:
        raise UnsupportedMediaType(
            "unsupported_media_type",
            f"{media_type!r} is not read here: send the logo as the body, image/png or image/jpeg",
            [FieldError("Content-Type", "image/png or image/jpeg")],
        )
    return await profiles.put_logo(call.ctx, business, await _logo_body(call.request), media_type)


@delete("/profile/logo", opt={"roles": ADMIN}, operation_id="deleteBusinessLogo", tags=["businesses"], status_code=204)
async def remove_logo(business_code: Code, call: CallDep) -> None:
    await profiles.delete_logo(call.ctx, await call.business(business_code))


router = Router(
    path="/v1/businesses/{business_code:int}",
    route_handlers=[read_profile, write_profile, read_logo, write_logo, remove_logo],
)
