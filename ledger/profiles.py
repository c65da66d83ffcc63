"""Business profiles: the letterhead of a business code, what its documents to customers carry.

One profile per business code (merchant-scoped): legal name, postal address, VAT id, tax number, commercial
register, managing directors, bank account, contact, the language of its letters and an optional logo. A PUT
replaces the whole profile in one statement (atomic: a reader sees the old or the new one, never a mix); the
logo is uploaded on its own and kept when the profile is replaced.

The fields and their validation (422 `profile_invalid`) are `ledger.profile_fields`'s; this module stores
the profile and its logo.

Logo: PNG or JPEG, at most 512 KiB and 2,000 x 2,000 pixels (decoded with Pillow to prove it is an image,
after the size in its header was checked, so a decompression bomb is refused before it is unpacked).
"""

from __future__ import annotations

import io
from typing import Literal

import asyncpg
import msgspec
from msgspec import Struct
from PIL import Image, UnidentifiedImageError

from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import Conflict, FieldError, NotFound, PayloadTooLarge, Unprocessable, present
from ledger.profile_fields import LogoOut, ProfileIn, ProfileOut, default_language, validate

__all__ = [
    "LOGO_BYTES_MAX",
    "LOGO_PIXELS_MAX",
    "LOGO_TYPES",
    "Logo",
    "delete_logo",
    "get_profile",
    "load_logo",
    "logo_too_large",
    "put_logo",
    "put_profile",
]

LOGO_BYTES_MAX = 512 * 1024
LOGO_PIXELS_MAX = 2000  # per side
LOGO_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG"}


class Logo(Struct, frozen=True, kw_only=True):
    data: bytes
    media_type: str
    width: int
    height: int


# --- store -----------------------------------------------------------------------------------------------
def _out(business: Business, r: asyncpg.Record) -> ProfileOut:
    stored = dict(r["profile"])
    language = stored.pop("letter_language", None)
    logo = None
    if r["logo_type"] is not None:
        logo = LogoOut(
            media_type=r["logo_type"],
            bytes=r["logo_bytes"],
            width=r["logo_width"],
            height=r["logo_height"],
            url=f"/v1/businesses/{business.code}/profile/logo",
        )
    return msgspec.convert(
        {
            **stored,
            "business": business.code,
            "letter_language": language or default_language(business.country),
            "letter_language_default": language is None,
            "logo": msgspec.to_builtins(logo) if logo else None,
            "updated_at": r["updated_at"],
        },
        ProfileOut,
        from_attributes=True,
        strict=False,
    )


_COLUMNS = "profile, logo_type, length(logo) AS logo_bytes, logo_width, logo_height, updated_at"


async def get_profile(ctx: Kontor, business: Business, *, missing: Literal["404", "409"] = "404") -> ProfileOut:
    """The profile; without one 404 `profile_not_found` (the profile route) or 409 `profile_missing` (a
    document that needs it)."""
    row = await ctx.pool.fetchrow(
        f"SELECT {_COLUMNS} FROM business_profiles WHERE merchant_id = $1 AND business = $2",
        business.merchant_id,
        business.code,
    )
    if row is None:
        text = (
            f"business code {business.code} has no business profile: PUT its legal name, address and bank "
            f"(/v1/businesses/{business.code}/profile)"
        )
        if missing == "409":
            raise Conflict("profile_missing", text)
        raise NotFound("profile_not_found", text)
    return _out(business, row)


async def put_profile(ctx: Kontor, business: Business, spec: ProfileIn) -> ProfileOut:
    """Validate and store the whole profile (the logo stays); one statement, so the change is atomic."""
    stored = validate(business, spec)
    row = await ctx.pool.fetchrow(
        "INSERT INTO business_profiles (merchant_id, business, profile) VALUES ($1, $2, $3) "
        "ON CONFLICT (merchant_id, business) DO UPDATE SET profile = excluded.profile, updated_at = now() "
        f"RETURNING {_COLUMNS}",
        business.merchant_id,
        business.code,
        stored,
    )
    row = present(row, "INSERT ... RETURNING gives the row")
    return _out(business, row)


def logo_too_large(size: int, *, at_least: bool = False) -> PayloadTooLarge:
    """413 `logo_too_large`, naming the limit (`LOGO_BYTES_MAX`, 512 KiB) and the size sent (`at_least`: the
    body was refused while it was still coming)."""
    sent = f"more than {LOGO_BYTES_MAX}" if at_least else str(size)
    return PayloadTooLarge(
        "logo_too_large",
        f"the logo has {sent} bytes; at most {LOGO_BYTES_MAX} bytes (512 KiB) are taken",
        [FieldError("logo", f"at most {LOGO_BYTES_MAX} bytes (512 KiB)")],
    )


def _image(data: bytes, media_type: str) -> tuple[int, int]:
    """Width and height of a PNG or JPEG within the limits; 413/415/422 otherwise (nothing is decoded before
    the header's size was checked)."""
    if len(data) > LOGO_BYTES_MAX:
        raise logo_too_large(len(data))
    expected = LOGO_TYPES[media_type]
    try:
        with Image.open(io.BytesIO(data), formats=[expected]) as image:
            width, height = image.size
            if width > LOGO_PIXELS_MAX or height > LOGO_PIXELS_MAX:
                raise Unprocessable(
                    "logo_invalid",
                    f"the logo is {width} x {height} pixels; at most {LOGO_PIXELS_MAX} x {LOGO_PIXELS_MAX}",
                    [FieldError("logo", f"at most {LOGO_PIXELS_MAX} x {LOGO_PIXELS_MAX} pixels")],
                )
            image.load()  # proves the whole image decodes
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise Unprocessable(
            "logo_invalid",
            f"the logo is not a readable {expected} image ({type(exc).__name__})",
            [FieldError("logo", f"a {expected} image")],
        ) from exc
    return width, height


async def put_logo(ctx: Kontor, business: Business, data: bytes, media_type: str) -> ProfileOut:
    """Store the logo of an existing profile (409 `profile_missing` without one)."""
    width, height = _image(data, media_type)
    row = await ctx.pool.fetchrow(
        "UPDATE business_profiles SET logo = $3, logo_type = $4, logo_width = $5, logo_height = $6, "
        f"updated_at = now() WHERE merchant_id = $1 AND business = $2 RETURNING {_COLUMNS}",
        business.merchant_id,
        business.code,
        data,
        media_type,
        width,
        height,
    )
    if row is None:
        raise Conflict("profile_missing", f"business code {business.code} has no business profile: PUT it first")
    return _out(business, row)


async def delete_logo(ctx: Kontor, business: Business) -> None:
    await ctx.pool.execute(
        "UPDATE business_profiles SET logo = NULL, logo_type = NULL, logo_width = NULL, logo_height = NULL, "
        "updated_at = now() WHERE merchant_id = $1 AND business = $2 AND logo IS NOT NULL",
        business.merchant_id,
        business.code,
    )


async def load_logo(ctx: Kontor, business: Business) -> Logo | None:
    row = await ctx.pool.fetchrow(
        "SELECT logo, logo_type, logo_width, logo_height FROM business_profiles WHERE merchant_id = $1 "
        "AND business = $2 AND logo IS NOT NULL",
        business.merchant_id,
        business.code,
    )
    if row is None:
        return None
    return Logo(
        data=bytes(row["logo"]), media_type=row["logo_type"], width=row["logo_width"], height=row["logo_height"]
    )
