"""Amazon Pay API v2 request signatures (AMZN-PAY-RSASSA-PSS-V2), for the client and the simulator alike.

Source: Amazon's "Signing requests" page (developer.amazon.com/docs/amazon-pay-api-v2/signing-requests.html)
and the official SDKs' test vectors (amzn/amazon-pay-api-sdk-java `tst/.../testdata.js`), which the tests
check byte for byte.

- Canonical request: six parts joined by LF: the method; the path (each segment percent-encoded as UTF-8,
  repeated `/` collapsed, empty → `/`); the query (keys and values percent-encoded with upper-case hex,
  space as `%20`, pairs sorted by key then value in byte order); one `name:value` line per signed header
  (names lower-case and sorted, values trimmed; the part ends with LF, hence the blank line); the signed
  header names joined by `;`; the lower-case hex SHA-256 of the request body.
- String to sign: the algorithm name, LF, the hex SHA-256 of the canonical request.
- Signature: RSASSA-PSS with SHA-256 and MGF1-SHA-256, salt length 32 for `AMZN-PAY-RSASSA-PSS-V2` and 20 for
  the older `AMZN-PAY-RSASSA-PSS`, base64 (standard alphabet). PSS is randomised: signatures are verified,
  never compared.
- Header: `authorization: <algorithm> PublicKeyId=<id>, SignedHeaders=<names>, Signature=<base64>`.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = [
    "ALGORITHM",
    "ALGORITHM_V1",
    "Authorization",
    "SignatureError",
    "canonical_path",
    "canonical_query",
    "canonical_request",
    "parse_authorization",
    "sign",
    "string_to_sign",
    "verify",
]

ALGORITHM = "AMZN-PAY-RSASSA-PSS-V2"
ALGORITHM_V1 = "AMZN-PAY-RSASSA-PSS"  # still accepted by Amazon; Kontor signs with V2 only
_SALT_LENGTHS = {ALGORITHM: 32, ALGORITHM_V1: 20}
_UNRESERVED = "-._~"  # with ASCII letters and digits, the characters left as they are
_AUTHORIZATION = re.compile(
    r"^(?P<algorithm>[A-Z0-9-]+) PublicKeyId=(?P<key>[^,\s]+), ?SignedHeaders=(?P<headers>[a-z0-9;-]+), ?"
    r"Signature=(?P<signature>[A-Za-z0-9+/=]+)$"
)


class SignatureError(Exception):
    """An authorization header that cannot be read, or a signature that does not hold; the text says which."""


def _encode(value: str) -> str:
    return quote(value, safe=_UNRESERVED)


def canonical_path(uri: str) -> str:
    """The path of a request URI as signed: segments percent-encoded, runs of `/` collapsed, empty → `/`.

    A URI that starts with `//` names a host (RFC 3986 network-path reference), which is not part of the path.
    """
    path = urlsplit(uri).path
    encoded = "/".join(_encode(segment) for segment in path.split("/"))
    collapsed = re.sub("/{2,}", "/", encoded)
    return collapsed or "/"


def canonical_query(parameters: Mapping[str, Iterable[str]] | Iterable[tuple[str, str]]) -> str:
    """`k=v` pairs, each side percent-encoded, sorted by encoded key then value (byte order), joined by `&`."""
    pairs = (
        [(k, v) for k, values in parameters.items() for v in values]
        if isinstance(parameters, Mapping)
        else list(parameters)
    )
    return "&".join(f"{k}={v}" for k, v in sorted((_encode(k), _encode(v)) for k, v in pairs))


def canonical_request(
    method: str,
    uri: str,
    query: Mapping[str, Iterable[str]] | Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: Iterable[str],
    body: bytes,
) -> str:
    """The canonical request over exactly `signed_headers` (names; looked up case-insensitively in `headers`).

    Raises SignatureError when a header to be signed is missing."""
    lower = {name.lower(): value for name, value in headers.items()}
    names = sorted({name.lower() for name in signed_headers})
    missing = [name for name in names if name not in lower]
    if missing:
        raise SignatureError(f"signed header {missing[0]} is not in the request")
    header_lines = "".join(f"{name}:{lower[name].strip()}\n" for name in names)
    return "\n".join(
        [
            method.upper(),
            canonical_path(uri),
            canonical_query(query),
            header_lines,
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )


def string_to_sign(canonical: str, algorithm: str = ALGORITHM) -> str:
    if algorithm not in _SALT_LENGTHS:
        raise SignatureError(f"unknown signing algorithm {algorithm!r}")
    return f"{algorithm}\n{hashlib.sha256(canonical.encode()).hexdigest()}"


def _pss(algorithm: str) -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=_SALT_LENGTHS[algorithm])


def sign(key: rsa.RSAPrivateKey, to_sign: str, algorithm: str = ALGORITHM) -> str:
    """The base64 RSASSA-PSS signature of a string to sign."""
    return base64.b64encode(key.sign(to_sign.encode(), _pss(algorithm), hashes.SHA256())).decode()


def verify(key: rsa.RSAPublicKey, to_sign: str, signature: str, algorithm: str = ALGORITHM) -> None:
    """Raises SignatureError unless `signature` is a valid signature of `to_sign` under `key`."""
    if algorithm not in _SALT_LENGTHS:
        raise SignatureError(f"unknown signing algorithm {algorithm!r}")
    try:
        key.verify(base64.b64decode(signature, validate=True), to_sign.encode(), _pss(algorithm), hashes.SHA256())
    except (InvalidSignature, ValueError) as exc:
        raise SignatureError("the signature does not match the string to sign") from exc


@dataclass(frozen=True, slots=True)
class Authorization:
    """The parts of an `authorization` header."""

    algorithm: str
    public_key_id: str
    signed_headers: tuple[str, ...]
    signature: str

    def header(self) -> str:
        return (
            f"{self.algorithm} PublicKeyId={self.public_key_id}, SignedHeaders={';'.join(self.signed_headers)}, "
            f"Signature={self.signature}"
        )


def parse_authorization(value: str) -> Authorization:
    match = _AUTHORIZATION.match(value.strip())
    if match is None:
        raise SignatureError(
            "the authorization header is not '<algorithm> PublicKeyId=…, SignedHeaders=…, Signature=…'"
        )
    algorithm = match["algorithm"]
    if algorithm not in _SALT_LENGTHS:
        raise SignatureError(f"unknown signing algorithm {algorithm!r}")
    return Authorization(algorithm, match["key"], tuple(match["headers"].split(";")), match["signature"])
