"""SNS message signatures: how Amazon Pay's IPNs are signed, and how Kontor checks them.

Checks, in order (AWS "Verifying the signatures of Amazon SNS messages"):
1. the envelope is a Notification, its TopicArn is on the allow-list;
2. SigningCertURL is https, on a host matching sns.<region>.amazonaws.com, and ends in .pem;
3. the certificate chains to a trusted root and is issued to sns.amazonaws.com (cryptography's
   X.509 verifier: validity, key usage, name);
4. the RSA PKCS#1 v1.5 signature (SHA1 for SignatureVersion 1, SHA256 for 2) holds over the canonical
   string "Message\\n…\\nMessageId\\n…\\n[Subject\\n…\\n]Timestamp\\n…\\nTopicArn\\n…\\nType\\n…\\n".
Certificates are fetched once per host and path and cached with a bound (CERTIFICATES_CACHED_MAX); a URL with a
port, user info, query or fragment is refused without a fetch, and a failed fetch is remembered for
FAILED_FETCH_TTL_S, so an outsider cannot make Kontor fetch the same URL again and again, and at most
FETCHES_PER_MINUTE_MAX new certificates are fetched a minute, so neither can many new URLs (the IPN endpoint
checks the topic and the merchant before it asks for a certificate at all). The simulator signs with a key whose
certificate it issues from its own root; tests and development trust that root and fetch from the simulator.
"""

from __future__ import annotations

import base64
import re
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

__all__ = ["FETCHES_PER_MINUTE_MAX", "SigningIdentity", "SnsError", "SnsVerifier", "string_to_sign"]

CERT_HOST = re.compile(r"^sns\.[a-zA-Z0-9\-]{3,}\.amazonaws\.com(\.cn)?$")
CERT_PATH = re.compile(r"^/[A-Za-z0-9._-]{1,200}\.pem$")
CERTIFICATES_CACHED_MAX = 32
FAILED_FETCHES_REMEMBERED_MAX = 256
FAILED_FETCH_TTL_S = 600.0
FETCHES_PER_MINUTE_MAX = 10  # new certificates fetched per minute: Amazon rotates its signing certificate rarely
CERTIFICATE_BYTES_MAX = 65_536
SNS_NAME = "sns.amazonaws.com"
_SIGNED_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_HASHES: dict[str, Any] = {"1": hashes.SHA1, "2": hashes.SHA256}


class SnsError(Exception):
    """The message is not a genuine SNS notification for an allowed topic; the text says why."""


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    parts = []
    for key in _SIGNED_KEYS:
        if key == "Subject" and message.get("Subject") is None:
            continue
        parts.append(f"{key}\n{message[key]}\n")
    return "".join(parts).encode()


@dataclass
class SnsVerifier:
    """Checks SNS envelopes; `fetch_base` (development and tests only) fetches certificates from elsewhere."""

    trusted_roots: list[x509.Certificate]
    http: httpx.AsyncClient
    fetch_base: str | None = None
    _cache: OrderedDict[str, x509.Certificate] = field(default_factory=OrderedDict)
    _failed: OrderedDict[str, tuple[float, str]] = field(default_factory=OrderedDict)
    _fetches: deque[float] = field(default_factory=deque)  # when the last fetches started (monotonic seconds)

    async def verify(self, envelope: Mapping[str, Any], topic_allowed: Any) -> None:
        if envelope.get("Type") != "Notification":
            raise SnsError(f"message type {envelope.get('Type')!r} is not a Notification")
        for key in ("Message", "MessageId", "Timestamp", "TopicArn", "Signature", "SigningCertURL"):
            if not isinstance(envelope.get(key), str):
                raise SnsError(f"envelope lacks {key}")
        if not topic_allowed(envelope["TopicArn"]):
            raise SnsError("topic is not on the allow-list")
        hash_type = _HASHES.get(str(envelope.get("SignatureVersion")))
        if hash_type is None:
            raise SnsError(f"unsupported SignatureVersion {envelope.get('SignatureVersion')!r}")
        certificate = await self._certificate(envelope["SigningCertURL"])
        public_key = certificate.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise SnsError("signing certificate does not carry an RSA key")
        try:
            signature = base64.b64decode(envelope["Signature"], validate=True)
            public_key.verify(signature, string_to_sign(envelope), padding.PKCS1v15(), hash_type())
        except (InvalidSignature, ValueError) as exc:
            raise SnsError("signature does not match the message") from exc

    async def _certificate(self, url: str) -> x509.Certificate:
        key = self._cache_key(url)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        failed = self._failed.get(key)
        if failed is not None and time.monotonic() - failed[0] < FAILED_FETCH_TTL_S:
            raise SnsError(f"signing certificate could not be fetched: {failed[1]} (not tried again yet)")
        now = time.monotonic()
        while self._fetches and now - self._fetches[0] >= 60.0:
            self._fetches.popleft()
        if len(self._fetches) >= FETCHES_PER_MINUTE_MAX:  # many new URLs at once: an outsider's, not Amazon's
            raise SnsError("signing certificate not fetched: too many new certificates asked for (try again later)")
        self._fetches.append(now)
        try:
            chain = await self._fetch(key)
        except SnsError as exc:
            self._failed[key] = (time.monotonic(), str(exc).rsplit(": ", 1)[-1])
            while len(self._failed) > FAILED_FETCHES_REMEMBERED_MAX:
                self._failed.popitem(last=False)
            raise
        self._check_chain(chain)
        self._cache[key] = chain[0]
        while len(self._cache) > CERTIFICATES_CACHED_MAX:
            self._cache.popitem(last=False)
        return chain[0]

    @staticmethod
    def _cache_key(url: str) -> str:
        """`https://<host><path>` of a well-formed SigningCertURL; SnsError for anything else."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            raise SnsError("SigningCertURL is not a URL") from None
        host = parsed.host or ""
        if (
            parsed.scheme != "https"
            or not CERT_HOST.match(host)
            or not CERT_PATH.match(parsed.path)
            or parsed.port is not None
            or parsed.userinfo
            or parsed.query
            or parsed.fragment
        ):
            raise SnsError("SigningCertURL is not an https .pem URL on an sns.<region>.amazonaws.com host")
        return f"https://{host}{parsed.path}"

    async def _fetch(self, key: str) -> list[x509.Certificate]:
        source = key if self.fetch_base is None else self.fetch_base.rstrip("/") + httpx.URL(key).path
        try:
            response = await self.http.get(source, timeout=5.0)
            response.raise_for_status()
            if len(response.content) > CERTIFICATE_BYTES_MAX:
                raise ValueError("certificate file too large")
            return x509.load_pem_x509_certificates(response.content)
        except (httpx.HTTPError, ValueError) as exc:
            raise SnsError(f"signing certificate could not be fetched: {type(exc).__name__}") from exc

    def _check_chain(self, chain: list[x509.Certificate]) -> None:
        if not self.trusted_roots:
            raise SnsError("no trusted root certificates are configured")
        verifier = PolicyBuilder().store(Store(self.trusted_roots)).build_server_verifier(x509.DNSName(SNS_NAME))
        try:
            verifier.verify(chain[0], chain[1:])
        except VerificationError as exc:
            raise SnsError(f"signing certificate is not trusted for {SNS_NAME}: {exc}") from exc


@dataclass(frozen=True)
class SigningIdentity:
    """A root CA and a certificate for sns.amazonaws.com signed by it, with the key: the simulator's."""

    root: x509.Certificate
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey

    @classmethod
    def generate(cls) -> SigningIdentity:
        now = datetime.now(UTC)
        root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Kontor Amazon Pay Simulator Root CA")])
        root = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SNS_NAME)]))
            .issuer_name(root_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(SNS_NAME)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        return cls(root=root, certificate=leaf, key=key)

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def root_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)

    def sign(self, envelope: Mapping[str, Any]) -> str:
        return base64.b64encode(self.key.sign(string_to_sign(envelope), padding.PKCS1v15(), hashes.SHA256())).decode()
