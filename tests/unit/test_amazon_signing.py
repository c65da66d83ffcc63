"""Amazon Pay v2 request signing: Amazon's published known-answer vectors, and signatures checked independently."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from payments.amazon import signing

VECTORS = json.loads((Path(__file__).parent.parent / "data" / "amazon_pay_signing_vectors.json").read_text())
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: f"{v['name']}:{v['algorithm']}")
def test_published_vector(vector: dict[str, Any]) -> None:
    headers = VECTORS["headers"]
    query = [(key, value) for key, value in vector["query"]]
    canonical = signing.canonical_request(vector["method"], vector["uri"], query, headers, headers, b"")
    assert canonical == vector["canonical_request"]
    assert signing.string_to_sign(canonical, str(vector["algorithm"])) == vector["string_to_sign"]


def test_all_34_vectors_are_there() -> None:
    assert len(VECTORS["vectors"]) == 34
    assert {v["algorithm"] for v in VECTORS["vectors"]} == {signing.ALGORITHM, signing.ALGORITHM_V1}


def test_published_documentation_example_header_part() -> None:
    """Amazon's signing page example: the canonical request of a Create Checkout Session (body not published)."""
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "X-Amz-Pay-Date": "20190923T231908Z",
        "X-Amz-Pay-Host": "pay-api.amazon.com",
        "X-Amz-Pay-Idempotency-Key": "cllHyiNvS8cJ8Zas",
        "X-Amz-Pay-Region": "na",
    }
    canonical = signing.canonical_request("POST", "/live/v2/checkoutSessions", [], headers, headers, b"{}")
    published_head = (
        "POST\n/live/v2/checkoutSessions\n\naccept:application/json\ncontent-type:application/json\n"
        "x-amz-pay-date:20190923T231908Z\nx-amz-pay-host:pay-api.amazon.com\n"
        "x-amz-pay-idempotency-key:cllHyiNvS8cJ8Zas\nx-amz-pay-region:na\n\n"
        "accept;content-type;x-amz-pay-date;x-amz-pay-host;x-amz-pay-idempotency-key;x-amz-pay-region\n"
    )
    assert canonical.startswith(published_head)
    assert canonical.endswith("44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a")  # sha256("{}")


@pytest.mark.parametrize("algorithm", [signing.ALGORITHM, signing.ALGORITHM_V1])
def test_signature_verifies_with_the_public_key(algorithm: str) -> None:
    to_sign = signing.string_to_sign("POST\n/\n\n\n\ne3b0", algorithm)
    signature = signing.sign(KEY, to_sign, algorithm)
    assert len(signature) == 344  # 2048-bit key, base64
    salt = 32 if algorithm == signing.ALGORITHM else 20
    KEY.public_key().verify(  # cryptography directly, with the parameters Amazon publishes
        base64.b64decode(signature),
        to_sign.encode(),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt),
        hashes.SHA256(),
    )
    signing.verify(KEY.public_key(), to_sign, signature, algorithm)
    assert signing.sign(KEY, to_sign, algorithm) != signature  # PSS is randomised: verify, never compare


def test_wrong_key_or_text_is_refused() -> None:
    to_sign = signing.string_to_sign("GET\n/\n\n\n\n")
    signature = signing.sign(KEY, to_sign)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(signing.SignatureError):
        signing.verify(other.public_key(), to_sign, signature)
    with pytest.raises(signing.SignatureError):
        signing.verify(KEY.public_key(), to_sign + "x", signature)
    with pytest.raises(signing.SignatureError):
        signing.verify(KEY.public_key(), to_sign, "not base64!")
    with pytest.raises(signing.SignatureError):  # signed with V2's salt, checked as V1
        signing.verify(KEY.public_key(), to_sign, signature, signing.ALGORITHM_V1)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_verifies_our_signature(tmp_path: Path) -> None:
    """A second, independent implementation (OpenSSL) accepts the signature with Amazon's parameters."""
    to_sign = signing.string_to_sign("POST\n/live/v2/charges\n\naccept:application/json\n\naccept\nabc")
    (tmp_path / "data").write_bytes(to_sign.encode())
    (tmp_path / "sig").write_bytes(base64.b64decode(signing.sign(KEY, to_sign)))
    (tmp_path / "pub.pem").write_bytes(
        KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    result = subprocess.run(
        [
            "openssl", "dgst", "-sha256", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32",
            "-sigopt", "rsa_mgf1_md:sha256", "-verify", str(tmp_path / "pub.pem"), "-signature", str(tmp_path / "sig"),
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verified OK" in result.stdout


def test_authorization_header_round_trip() -> None:
    header = signing.Authorization(
        signing.ALGORITHM, "SANDBOX-AEXAMPLE", ("accept", "x-amz-pay-date"), "QUJD" * 86
    ).header()
    parsed = signing.parse_authorization(header)
    assert parsed.public_key_id == "SANDBOX-AEXAMPLE"
    assert parsed.signed_headers == ("accept", "x-amz-pay-date")
    for bad in (
        "",
        "Bearer x",
        f"{signing.ALGORITHM} PublicKeyId=a, SignedHeaders=A;B, Signature=x",
        "X PublicKeyId=a",
    ):
        with pytest.raises(signing.SignatureError):
            signing.parse_authorization(bad)


def test_missing_signed_header_is_an_error() -> None:
    with pytest.raises(signing.SignatureError, match="x-amz-pay-date"):
        signing.canonical_request("GET", "/v2/charges/x", [], {"accept": "a"}, ["accept", "x-amz-pay-date"], b"")


def test_query_and_path_encoding() -> None:
    assert signing.canonical_path("/live/v2/charges/S02-1-2-C3") == "/live/v2/charges/S02-1-2-C3"
    assert signing.canonical_path("/v2/a b/ü") == "/v2/a%20b/%C3%BC"
    assert signing.canonical_query({"b": ["2"], "a": ["z", "y"]}) == "a=y&a=z&b=2"
    assert signing.canonical_query([("k", "a+b c")]) == "k=a%2Bb%20c"
