"""Amazon Pay settings checked before anything is stored or sent: the private key, the key's environment, the
region, and what Amazon's answers to the proving calls mean. Pure: no database, no network.

Split from `payments.settings` (which proves the settings with signed calls and stores them) so that the rules read
and test alone. Every refusal is a 422 `amazon_pay_credentials_invalid` naming the fields that can be wrong
(developer.amazon.com/docs/amazon-pay-registration: keys from Integration Central are RSA, PEM, PKCS#8 or PKCS#1;
pay.amazon.com: the currencies each region settles).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ledger.domain import Business
from ledger.errors import FieldError, Unprocessable
from payments.amazon.client import AmazonPayError

__all__ = [
    "KEY_BITS_MIN",
    "REGION_CURRENCIES",
    "check_environment",
    "check_sellers",
    "invalid",
    "private_key",
    "refused",
    "region_of",
]

KEY_BITS_MIN = 2048
# the currencies Amazon Pay settles in, by region (pay.amazon.com: US; EU and UK; Japan)
REGION_CURRENCIES = {"na": frozenset({"USD"}), "eu": frozenset({"EUR", "GBP"}), "jp": frozenset({"JPY"})}
# one PEM block of a private key (PKCS#8, PKCS#1, or encrypted: refused below, by its password), nothing around it;
# inside: base64 lines, and the header lines of an encrypted PKCS#1 key
_PEM = re.compile(
    r"-----BEGIN ((?:RSA |ENCRYPTED )?PRIVATE KEY)-----\n(?:[A-Za-z0-9+/=]{1,100}\n|[A-Za-z-]{1,40}: [ -~]{1,200}\n|\n)+"
    r"-----END \1-----\n"
)
_FIELDS_OF_REASON = {
    "InvalidRequestSignature": (("public_key_id", "private_key"), "Amazon could not verify Kontor's signature: the "
                                "public key id is unknown to Amazon, or the private key does not belong to it"),
    "UnauthorizedAccess": (("public_key_id", "region", "sandbox"), "Amazon refused this key here: it belongs to "
                           "another region or environment (sandbox/live) than the one named"),
    "InvalidAuthorizationToken": (("mws_auth_token",), "Amazon refused the delegated authorization"),
}  # fmt: skip


def invalid(field: str, message: str) -> Unprocessable:
    """422 `amazon_pay_credentials_invalid` naming one field."""
    return Unprocessable("amazon_pay_credentials_invalid", f"{field}: {message}", [FieldError(field, message)])


def private_key(pem: str) -> tuple[rsa.RSAPrivateKey, bytes]:
    """The RSA key of a PEM as Integration Central downloads it (exactly one PEM block and nothing around it), and
    the PEM to seal (line endings LF, one final newline); 422 naming `private_key` otherwise."""
    text = pem.replace("\r\n", "\n").strip() + "\n"
    if not _PEM.fullmatch(text):
        raise invalid(
            "private_key",
            "not one PEM private key (-----BEGIN PRIVATE KEY----- ... -----END PRIVATE KEY-----) and nothing else",
        )
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except TypeError:
        raise invalid("private_key", "the key is protected by a password: export it without one") from None
    except (ValueError, UnicodeError):
        raise invalid("private_key", "not a PEM private key (-----BEGIN PRIVATE KEY----- ...)") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise invalid("private_key", "Amazon Pay keys are RSA keys")
    if key.key_size < KEY_BITS_MIN:
        raise invalid("private_key", f"the key has {key.key_size} bits; Amazon Pay keys have at least {KEY_BITS_MIN}")
    return key, text.encode()


def check_environment(public_key_id: str, sandbox: bool) -> None:
    """A public key id that says its environment (`SANDBOX-...`, `LIVE-...`) must be used there; 422 naming
    `sandbox` otherwise. Ids without the prefix are left to Amazon."""
    prefix = public_key_id.split("-", 1)[0]
    if prefix in ("SANDBOX", "LIVE") and (prefix == "SANDBOX") != sandbox:
        raise invalid("sandbox", f"the public key id is a {prefix.lower()} key; set sandbox to {prefix == 'SANDBOX'}")


def region_of(region: str | None, business: Business) -> str:
    """The Amazon Pay region of the business code: as given, else the one that settles its currency (USD na, EUR
    and GBP eu, JPY jp); 422 naming `region` when a region is given that does not settle one of those currencies,
    or none is given for another currency. (That the account itself is in the region, Amazon says: a key of
    another region's account is refused at the signed call.)"""
    home = next((r for r, currencies in REGION_CURRENCIES.items() if business.currency in currencies), None)
    chosen = region or home
    if chosen is None:
        raise invalid("region", f"business code {business.code} books {business.currency}; give the region")
    if home is not None and chosen != home:
        raise invalid(
            "region",
            f"Amazon Pay's {chosen} region does not settle {business.currency}, which business code {business.code} "
            f"books ({business.currency} is settled in the {home} region)",
        )
    return chosen


def refused(access: str, exc: AmazonPayError) -> Unprocessable:
    """Amazon refused the credentials (`access`: keys or delegated): 422 naming the fields that can be wrong, by
    Amazon's reasonCode (a delegated connection names `mws_auth_token` for the key fields, Kontor's own)."""
    fields, why = _FIELDS_OF_REASON.get(exc.reason_code, (("amazon_merchant_id",), "Amazon refused the credentials"))
    if access == "delegated":
        fields = tuple("mws_auth_token" if f in ("private_key", "public_key_id") else f for f in fields)
        fields = tuple(dict.fromkeys(fields))
    message = f"{why} ({exc.reason_code})"
    return Unprocessable(
        "amazon_pay_credentials_invalid", f"{', '.join(fields)}: {message}", [FieldError(f, message) for f in fields]
    )


def check_sellers(seller_ids: Iterable[str | None], merchant_id: str) -> bool:
    """Whether the keys' payouts (their `sellerId`s, `GET /v2/disbursements`) show that they act for `merchant_id`;
    payouts naming another account are a 422 naming `amazon_merchant_id`. No payouts: not shown (False)."""
    sellers = {s for s in seller_ids if s}
    others = sorted(sellers - {merchant_id})
    if others:
        raise invalid(
            "amazon_merchant_id",
            f"these keys belong to Amazon merchant {', '.join(others)} (Amazon pays their account out under that id), "
            f"not {merchant_id}",
        )
    return bool(sellers)
