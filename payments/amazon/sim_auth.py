"""Who is calling the simulated Amazon Pay: public keys, solution providers, delegated tokens, signature checks.

Why separate: every API request passes through `verify` before any object is touched, and the key ring is
what the control routes fill (register merchant / provider, grant an MWS auth token).

Checks, in order (developer.amazon.com/docs/amazon-pay-api-v2/signing-requests.html; error-handling.html):
1. path `/live/v2/…`, `/sandbox/v2/…` or `/v2/…` (elsewhere: 404 RequestNotSupported, in `sim_api`);
2. headers `authorization` and `x-amz-pay-date` present (400 MissingHeader) and well formed (400
   InvalidHeaderValue); the date within 15 minutes of the real clock (400 InvalidHeaderValue); SignedHeaders
   must include x-amz-pay-date (400 InvalidHeaderValue);
3. the PublicKeyId is registered (else 403 InvalidRequestSignature: without the key the signature cannot be
   checked, so the simulator answers as for a bad signature - a choice; Amazon's exact answer is not published);
4. the environment: `SANDBOX-…`/`LIVE-…` keys name theirs and may use `/v2` or their own explicit path; legacy
   ids (no prefix) must use the explicit path of the environment they were created for (`/live/v2` or
   `/sandbox/v2`); anything else is 401 UnauthorizedAccess;
5. the signature over exactly the headers named in SignedHeaders and the body's SHA-256 (403
   InvalidRequestSignature, echoing the simulator's string to sign as Amazon does; a named header missing
   from the request is the same error);
6. delegation: a provider's key acts for the merchant of its `x-amz-pay-authtoken` (403
   InvalidAuthorizationToken for an unknown token or one issued to another provider). The token header may be
   signed or not: the PHP SDK sends it unsigned and Amazon accepts that, so the simulator does too.
"""

from __future__ import annotations

import base64
import re
import secrets
import string
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import rsa

from payments.amazon import signing
from payments.amazon.sim_model import SimError

__all__ = [
    "DATE_SKEW_MAX",
    "Caller",
    "KeyRecord",
    "KeyRing",
    "key_environment",
    "new_public_key_id",
    "split_path",
    "verify",
]

DATE_SKEW_MAX = timedelta(minutes=15)
TOKENS_MAX = 100_000
_PREFIXES = (("/live/v2/", "Live"), ("/sandbox/v2/", "Sandbox"), ("/v2/", None))
_DATE = re.compile(r"^\d{8}T\d{6}Z$")


def new_public_key_id(environment: str) -> str:
    """`SANDBOX-` or `LIVE-` + 24 upper-case alphanumerics, as Integration Central issues them."""
    alphabet = string.ascii_uppercase + string.digits
    return ("SANDBOX-" if environment == "Sandbox" else "LIVE-") + "".join(secrets.choice(alphabet) for _ in range(24))


def key_environment(public_key_id: str) -> str | None:
    if public_key_id.startswith("SANDBOX-"):
        return "Sandbox"
    if public_key_id.startswith("LIVE-"):
        return "Live"
    return None


def split_path(path: str) -> tuple[str | None, str] | None:
    """(environment named by the path or None for `/v2`, the path below the prefix) or None if not an API path."""
    for prefix, environment in _PREFIXES:
        if path.startswith(prefix):
            return environment, path[len(prefix) - 1 :]
    return None


@dataclass(frozen=True)
class KeyRecord:
    """An API key: it belongs to exactly one merchant account (or provider) and one environment, as Integration
    Central issues them; calls signed with it act for that merchant only, in that environment only."""

    public_key_id: str
    key: rsa.RSAPublicKey
    owner: str  # merchant | provider
    owner_id: str  # the merchant id, or the provider's public key id
    environment: str = "Sandbox"  # Sandbox | Live: also for a legacy id without SANDBOX-/LIVE- prefix


@dataclass(frozen=True)
class Caller:
    key: KeyRecord
    environment: str  # Sandbox | Live
    merchant_id: str | None  # whose objects; None for a provider call without a token


@dataclass
class KeyRing:
    keys: dict[str, KeyRecord] = field(default_factory=dict)
    grants: dict[str, tuple[str, str]] = field(default_factory=dict)  # MWS auth token -> (provider key, merchant)
    tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # v2 token -> (provider key, merchant)
    issued: dict[tuple[str, str], str] = field(default_factory=dict)  # (provider key, merchant) -> v2 token

    def add(self, record: KeyRecord) -> None:
        known = self.keys.get(record.public_key_id)
        if known is not None and (known.owner, known.owner_id, known.environment) != (
            record.owner,
            record.owner_id,
            record.environment,
        ):
            raise SimError(409, "InvalidParameterValue", f"public key id {record.public_key_id} is taken")
        if len(self.keys) >= TOKENS_MAX:
            raise SimError(400, "InvalidRequest", "too many keys")
        self.keys[record.public_key_id] = record

    def grant(self, provider_key_id: str, merchant_id: str) -> str:
        """The merchant authorizes the provider in Seller Central: an MWS auth token `amzn.mws.<uuid>`."""
        provider = self.keys.get(provider_key_id)
        if provider is None or provider.owner != "provider":
            raise SimError(404, "ResourceNotFound", f"no solution provider key {provider_key_id}")
        if len(self.grants) >= TOKENS_MAX:
            raise SimError(400, "InvalidRequest", "too many grants")
        token = f"amzn.mws.{uuid.uuid4()}"
        self.grants[token] = (provider_key_id, merchant_id)
        return token

    def exchange(self, provider_key_id: str, merchant_id: str, mws_auth_token: str) -> str:
        granted = self.grants.get(mws_auth_token)
        if granted is None or granted != (provider_key_id, merchant_id):
            raise SimError(400, "InvalidParameterValue", "mwsAuthToken is not a grant of this merchant to you")
        known = self.issued.get(granted)
        if known is not None:
            return known
        parts = [base64.urlsafe_b64encode(secrets.token_bytes(n)).rstrip(b"=").decode() for n in (18, 96, 32)]
        token = "eyJ" + ".".join(parts)
        self.tokens[token], self.issued[granted] = granted, token
        return token


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None or not value.strip():
        raise SimError(400, "MissingHeader", f"the request lacks the header {name}")
    return value.strip()


def _check_date(value: str, real_now: datetime) -> None:
    if not _DATE.match(value):
        raise SimError(400, "InvalidHeaderValue", "x-amz-pay-date must be YYYYMMDDTHHMMSSZ (UTC)")
    try:
        moment = datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SimError(400, "InvalidHeaderValue", "x-amz-pay-date is not a date") from None
    if abs(real_now - moment) > DATE_SKEW_MAX:
        raise SimError(400, "InvalidHeaderValue", "x-amz-pay-date is more than 15 minutes from the current time")


def _environment(record: KeyRecord, path_environment: str | None) -> str:
    named = key_environment(record.public_key_id)
    if named is None and path_environment is None:
        raise SimError(401, "UnauthorizedAccess", "/v2 needs an environment-specific key (LIVE-/SANDBOX-)")
    environment = named or record.environment
    if path_environment is not None and path_environment != environment:
        raise SimError(401, "UnauthorizedAccess", f"a {environment} key cannot call the {path_environment} environment")
    return environment


def verify(
    ring: KeyRing,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    real_now: datetime,
) -> Caller:
    """Checks 2-6 of the module docstring for one request (`headers` with lower-case names)."""
    split = split_path(path)
    if split is None:
        raise SimError(404, "RequestNotSupported", f"{path} is not an Amazon Pay API path")
    try:
        authorization = signing.parse_authorization(_header(headers, "authorization"))
    except signing.SignatureError as exc:
        raise SimError(400, "InvalidHeaderValue", f"authorization: {exc}") from None
    _check_date(_header(headers, "x-amz-pay-date"), real_now)
    if "x-amz-pay-date" not in authorization.signed_headers:
        raise SimError(400, "InvalidHeaderValue", "SignedHeaders must include x-amz-pay-date")
    record = ring.keys.get(authorization.public_key_id)
    if record is None:
        raise SimError(403, "InvalidRequestSignature", f"PublicKeyId {authorization.public_key_id} is not registered")
    environment = _environment(record, split[0])
    try:
        canonical = signing.canonical_request(method, path, query, headers, authorization.signed_headers, body)
        to_sign = signing.string_to_sign(canonical, authorization.algorithm)
    except signing.SignatureError as exc:
        raise SimError(403, "InvalidRequestSignature", f"Unable to verify signature: {exc}") from None
    try:
        signing.verify(record.key, to_sign, authorization.signature, authorization.algorithm)
    except signing.SignatureError:
        raise SimError(
            403,
            "InvalidRequestSignature",
            f"Unable to verify signature, signing String [{to_sign}] , signature [{authorization.signature}]",
        ) from None
    return Caller(record, environment, _acting_merchant(ring, record, headers.get("x-amz-pay-authtoken")))


def _acting_merchant(ring: KeyRing, record: KeyRecord, token: str | None) -> str | None:
    if record.owner == "merchant":
        return record.owner_id
    if token is None:
        return None
    owner = ring.tokens.get(token.strip())
    if owner is not None and owner[0] == record.public_key_id:
        return owner[1]
    raise SimError(403, "InvalidAuthorizationToken", "x-amz-pay-authtoken is not valid for this key")
