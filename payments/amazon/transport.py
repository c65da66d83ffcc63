"""One signed Amazon Pay API v2 call: URL, headers, AMZN-PAY-RSASSA-PSS-V2 signature, bounded retries, bounded reads.

Why separate from the client: the client's methods only say which path, body and object; everything about the
wire lives here, so that every call is signed, retried and logged the same way.

Rules (developer.amazon.com/docs/amazon-pay-api-v2/signing-requests.html; SDK sources amzn/amazon-pay-api-sdk-*):
- Host `pay-api.amazon.{com|eu|jp}` by region (na, eu, jp); an `endpoint` replaces scheme and host only.
- Path prefix `/live/v2` or `/sandbox/v2`; `/v2` when the public key id starts with `LIVE-`/`SANDBOX-`.
- Signed headers: accept, content-type, x-amz-pay-date (UTC `YYYYMMDDTHHMMSSZ`), x-amz-pay-host (host[:port]
  called), x-amz-pay-region, x-amz-pay-idempotency-key (POST), x-amz-pay-authtoken (delegated). `user-agent`
  is sent unsigned. The body is compact JSON; its exact bytes are hashed.
- Retries: 408, 425, 429, 500, 502, 503, 504, connection errors and timeouts; `attempts_max` attempts with
  exponential backoff and jitter, `Retry-After` (seconds) honoured up to `RETRY_AFTER_MAX_S`. A POST is
  retried with the same idempotency key, which Amazon answers with the first result.
- Answers are read up to `RESPONSE_BYTES_MAX`; errors are `{"reasonCode", "message"}`.
- Logs never carry a secret: a merchant's MWS auth token travels in the token exchange's path, pre-signed URLs carry
  credentials; the call's own debug line and httpx's request line (`RedactUrls`) show them as `[redacted]`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata

import httpx

from ledger.textsafe import parse_ascii_int
from payments.amazon import signing
from payments.amazon.objects import RETRYABLE_STATUSES, AmazonPayError, Credentials

__all__ = [
    "HOSTS",
    "IDEMPOTENCY_KEY",
    "RESPONSE_BYTES_MAX",
    "RETRY_AFTER_MAX_S",
    "Answer",
    "RedactUrls",
    "Transport",
    "api_prefix",
    "check_idempotency_key",
    "install_log_redaction",
    "read_bounded",
    "redact_url",
]

log = logging.getLogger("kontor.amazon_pay")
HOSTS = {"na": "pay-api.amazon.com", "eu": "pay-api.amazon.eu", "jp": "pay-api.amazon.jp"}
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
RESPONSE_BYTES_MAX = 1 << 20
RETRY_AFTER_MAX_S = 10.0


def _user_agent() -> str:
    try:
        return f"kontor/{metadata.version('kontor')}"
    except metadata.PackageNotFoundError:
        return "kontor/unknown"


USER_AGENT = _user_agent()


def api_prefix(creds: Credentials) -> str:
    """`/v2` for environment-specific keys (the key says the environment), else `/live/v2` or `/sandbox/v2`."""
    if creds.public_key_id.startswith(("LIVE-", "SANDBOX-")):
        return "/v2"
    return "/sandbox/v2" if creds.sandbox else "/live/v2"


# secrets that travel in URLs: a merchant's MWS auth token (GET /v2/authorizationTokens/{token}), and the
# credentials of pre-signed document and upload URLs (their query's signature; the simulator's path tokens)
_SECRET_IN_URL = re.compile(r"(/authorizationTokens/|/s3/report-documents/|/s3/uploads/[^/?\s]+/)[^/?\s\"]+")
_QUERY = re.compile(r"\?[^\s\"]*")


def redact_url(text: str) -> str:
    """`text` with the secrets a URL of an Amazon Pay call can carry replaced by `[redacted]`, its query dropped."""
    return _QUERY.sub("?[redacted]", _SECRET_IN_URL.sub(r"\1[redacted]", text))


class RedactUrls(logging.Filter):
    """Redacts URLs in the request lines httpx logs (`HTTP Request: GET <url> ...`, INFO): no token or pre-signed
    credential reaches a log, whatever level the logger runs at."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(str(a)) if isinstance(a, httpx.URL | str) else a for a in record.args)
        return True


def install_log_redaction() -> None:
    """Attach `RedactUrls` to httpx's logger once per process (the Amazon Pay client does it when it is made)."""
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, RedactUrls) for f in logger.filters):
        logger.addFilter(RedactUrls())


def check_idempotency_key(key: str) -> None:
    """Amazon's rule for x-amz-pay-idempotency-key: 1-32 characters of [A-Za-z0-9_-]; ValueError otherwise."""
    if not IDEMPOTENCY_KEY.match(key):
        raise ValueError(f"idempotency key {key!r} is not 1-32 characters of A-Z a-z 0-9 _ -")


@dataclass(frozen=True, slots=True)
class Answer:
    """A 2xx answer: its status and decoded JSON body."""

    status: int
    body: object


class Transport:
    """Signs and sends API calls for `AmazonPayClient`; one per client, sharing the caller's httpx client."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        endpoint: str | None,
        attempts_max: int,
        backoff_s: float,
        timeout_s: float,
        clock: Callable[[], datetime],
    ) -> None:
        if attempts_max < 1:
            raise ValueError("attempts_max must be at least 1")
        self._http, self._clock = http, clock
        self._endpoint = httpx.URL(endpoint) if endpoint else None
        self._attempts_max, self._backoff_s, self._timeout_s = attempts_max, backoff_s, timeout_s

    def base_url(self, creds: Credentials) -> str:
        if self._endpoint is not None:
            return f"{self._endpoint.scheme}://{self._endpoint.netloc.decode()}"
        return f"https://{HOSTS[creds.region]}"

    async def call(
        self,
        creds: Credentials,
        method: str,
        path: str,
        *,
        body: dict[str, object] | None = None,
        query: Sequence[tuple[str, str]] = (),
        idempotency_key: str | None = None,
    ) -> Answer:
        """One API operation (`path` below the /v2 prefix, e.g. `/charges/S02-...`), retried as the rules say."""
        if method == "POST":
            if idempotency_key is None:
                raise ValueError("every POST needs an idempotency key")
            check_idempotency_key(idempotency_key)
        content = b"" if body is None else json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        full_path = api_prefix(creds) + path
        status, raw = await self._with_retries(creds, method, full_path, query, content, idempotency_key)
        return Answer(status, _decode(raw, status))

    async def _with_retries(
        self,
        creds: Credentials,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        content: bytes,
        idempotency_key: str | None,
    ) -> tuple[int, bytes]:
        last: AmazonPayError | None = None
        for attempt in range(1, self._attempts_max + 1):
            started = time.monotonic()
            retry_after_s: float | None = None
            try:
                response_status, raw, retry_after_s = await self._send(
                    creds, method, path, query, content, idempotency_key
                )
            except httpx.TransportError as exc:  # connection refused, reset, timeouts
                response_status, raw = 0, b""
                last = AmazonPayError(0, "Unreachable", f"{type(exc).__name__}: {exc}", reachable=False)
            self._log(method, path, response_status, attempt, started)
            if 200 <= response_status < 300:
                return response_status, raw
            if response_status:
                last = _error(response_status, raw)
                if response_status not in RETRYABLE_STATUSES:
                    raise last
            if attempt < self._attempts_max:
                await asyncio.sleep(self._delay_s(attempt, retry_after_s))
        if last is None:  # attempts_max >= 1 is checked in __init__; kept for the type checker
            raise AmazonPayError(0, "Unreachable", "no attempt was made", reachable=False)
        raise AmazonPayError(last.status, last.reason_code, last.message, reachable=False)

    def _delay_s(self, attempt: int, retry_after_s: float | None) -> float:
        jitter: float = random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret
        backoff_s = self._backoff_s * float(2 ** (attempt - 1)) * jitter
        if retry_after_s is not None:
            return max(backoff_s, min(retry_after_s, RETRY_AFTER_MAX_S))
        return backoff_s

    async def _send(
        self,
        creds: Credentials,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        content: bytes,
        idempotency_key: str | None,
    ) -> tuple[int, bytes, float | None]:
        base = self.base_url(creds)
        headers = self._signed_headers(creds, method, path, query, content, httpx.URL(base), idempotency_key)
        canonical_query = signing.canonical_query(list(query))
        url = base + path + (f"?{canonical_query}" if canonical_query else "")
        async with self._http.stream(
            method, url, content=content or None, headers=headers, timeout=self._timeout_s
        ) as response:
            raw = await read_bounded(response, RESPONSE_BYTES_MAX)
            return response.status_code, raw, _retry_after_s(response.headers.get("retry-after"))

    def _signed_headers(
        self,
        creds: Credentials,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        content: bytes,
        base: httpx.URL,
        idempotency_key: str | None,
    ) -> dict[str, str]:
        headers = {
            "accept": "application/json",
            "content-type": "application/json",
            "x-amz-pay-date": self._clock().strftime("%Y%m%dT%H%M%SZ"),
            "x-amz-pay-host": base.netloc.decode(),
            "x-amz-pay-region": creds.region,
        }
        if idempotency_key is not None:
            headers["x-amz-pay-idempotency-key"] = idempotency_key
        if creds.auth_token is not None:
            headers["x-amz-pay-authtoken"] = creds.auth_token
        names = sorted(headers)
        canonical = signing.canonical_request(method, path, list(query), headers, names, content)
        signature = signing.sign(creds.private_key, signing.string_to_sign(canonical))
        header = signing.Authorization(signing.ALGORITHM, creds.public_key_id, tuple(names), signature)
        return {**headers, "authorization": header.header(), "user-agent": USER_AGENT}

    @staticmethod
    def _log(method: str, path: str, status: int, attempt: int, started: float) -> None:
        log.debug(
            "amazon pay call %s %s -> %s (attempt %d, %.1f ms)",
            method,
            redact_url(path),
            status,
            attempt,
            (time.monotonic() - started) * 1000,
        )


async def read_bounded(response: httpx.Response, bytes_max: int) -> bytes:
    """The body of a streamed response, refused (AmazonPayError `ResponseTooLarge`) above `bytes_max` bytes."""
    declared = parse_ascii_int(response.headers.get("content-length", ""))
    if declared is not None and declared > bytes_max:
        raise AmazonPayError(response.status_code, "ResponseTooLarge", f"answer of {declared} bytes > {bytes_max}")
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > bytes_max:
            raise AmazonPayError(response.status_code, "ResponseTooLarge", f"answer larger than {bytes_max} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _retry_after_s(value: str | None) -> float | None:
    """Retry-After in seconds (ASCII digits only: int() would read other scripts' digits), else None."""
    seconds = None if value is None else parse_ascii_int(value.strip(), length_max=9)
    return None if seconds is None else float(seconds)


def _decode(raw: bytes, status: int) -> object:
    if not raw:
        return {}
    try:
        decoded: object = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise AmazonPayError(status, "InvalidResponse", "the answer is not JSON") from None
    return decoded


def _error(status: int, raw: bytes) -> AmazonPayError:
    """Amazon's `{"reasonCode", "message"}`; a body that is not that becomes reasonCode `InvalidResponse`."""
    try:
        body = json.loads(raw) if raw else None
    except (UnicodeDecodeError, ValueError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("reasonCode"), str):
        message = body.get("message")
        return AmazonPayError(status, body["reasonCode"], message if isinstance(message, str) else "")
    return AmazonPayError(status, "InvalidResponse", f"HTTP {status} without an Amazon error body")
