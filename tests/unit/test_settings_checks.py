"""Amazon Pay settings checked before anything is stored or sent (payments/settings_checks.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ledger.domain import Business
from ledger.errors import Unprocessable
from payments.amazon.client import AmazonPayError
from payments.settings_checks import check_environment, check_sellers, private_key, refused, region_of

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, fmt: serialization.PrivateFormat, password: bytes = b""
) -> str:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, fmt, encryption).decode()


def refusal(call: object, *args: object) -> tuple[str, list[str]]:
    with pytest.raises(Unprocessable) as raised:
        call(*args)  # type: ignore[operator]
    return raised.value.code, [f"{e.field}: {e.message}" for e in raised.value.errors]


def business(currency: str) -> Business:
    return Business(1, 1001, "DE", currency, "skr03", (Decimal("19"),))


@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL])
def test_a_key_as_integration_central_downloads_it(fmt: serialization.PrivateFormat) -> None:
    text = pem(KEY, fmt)
    key, sealed = private_key("\r\n" + text.replace("\n", "\r\n") + "  ")  # a Windows editor's line endings
    assert key.private_numbers() == KEY.private_numbers()
    assert sealed == text.encode()  # LF, one final newline: what is sealed


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("not a key", "not one PEM private key"),
        (pem(KEY, serialization.PrivateFormat.PKCS8) + "trailing words\n", "not one PEM private key"),
        (pem(KEY, serialization.PrivateFormat.PKCS8, b"secret"), "the key is protected by a password"),
        (pem(ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.PKCS8), "Amazon Pay keys are RSA"),
        (
            pem(rsa.generate_private_key(public_exponent=65537, key_size=1024), serialization.PrivateFormat.PKCS8),
            "the key has 1024 bits; Amazon Pay keys have at least 2048",
        ),
    ],
)
def test_keys_amazon_would_not_take_are_refused_naming_private_key(text: str, why: str) -> None:
    code, errors = refusal(private_key, text)
    assert code == "amazon_pay_credentials_invalid"
    [error] = errors
    assert error.startswith(f"private_key: {why}"), error


def test_a_key_id_naming_its_environment_must_be_used_there() -> None:
    check_environment("SANDBOX-AE123", True)
    check_environment("LIVE-AE123", False)
    check_environment("AE123", True)  # no prefix: Amazon says
    assert refusal(check_environment, "LIVE-AE123", True)[1] == [
        "sandbox: the public key id is a live key; set sandbox to False"
    ]


def test_the_region_must_settle_the_currency() -> None:
    assert region_of(None, business("EUR")) == "eu"
    assert region_of(None, business("GBP")) == "eu"
    assert region_of(None, business("USD")) == "na"
    assert region_of("jp", business("JPY")) == "jp"
    assert region_of("eu", business("CHF")) == "eu"  # a currency no region is known for: as given
    assert refusal(region_of, "na", business("EUR"))[1] == [
        "region: Amazon Pay's na region does not settle EUR, which business code 1001 books (EUR is settled in the "
        "eu region)"
    ]
    assert refusal(region_of, None, business("CHF"))[1] == ["region: business code 1001 books CHF; give the region"]


def test_amazon_refusals_name_the_fields_that_can_be_wrong() -> None:
    signature = AmazonPayError(400, "InvalidRequestSignature", "no")
    assert [e.field for e in refused("keys", signature).errors] == ["public_key_id", "private_key"]
    assert [e.field for e in refused("delegated", signature).errors] == ["mws_auth_token"]  # Kontor's key, once
    region = AmazonPayError(401, "UnauthorizedAccess", "no")
    assert [e.field for e in refused("delegated", region).errors] == ["mws_auth_token", "region", "sandbox"]
    other = refused("keys", AmazonPayError(403, "Forbidden", "no"))
    assert (other.detail, [e.field for e in other.errors]) == (
        "amazon_merchant_id: Amazon refused the credentials (Forbidden)",
        ["amazon_merchant_id"],
    )


def test_payouts_prove_the_account_or_name_another() -> None:
    assert check_sellers([], "A1") is False
    assert check_sellers([None, "A1", "A1"], "A1") is True
    assert refusal(check_sellers, ["A1", "B2", "C3"], "A1")[1] == [
        "amazon_merchant_id: these keys belong to Amazon merchant B2, C3 (Amazon pays their account out under that "
        "id), not A1"
    ]
