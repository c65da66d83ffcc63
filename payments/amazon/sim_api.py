"""The simulated Amazon Pay API v2 routes: routing, signature check, idempotency, and one handler per operation.

Why separate: this is the wire contract Kontor's client talks to; the simulator app (`simulator.py`) only hands
it raw requests and sends the IPNs the operations queued.

Order of checks for every request: injected failure (control route `/sim/failures`), route (404/405
RequestNotSupported), signature (`sim_auth.verify`: a key acts for its one merchant account, in its one
environment), delegation (a provider key needs a token: 401 UnauthorizedAccess), region (the signed
x-amz-pay-region must be the merchant account's: keys do not work on another region's endpoint, 401
UnauthorizedAccess), idempotency for POST, then the operation. Idempotency (x-amz-pay-idempotency-key on every
POST, 1-32 `[A-Za-z0-9_-]`, else 400 MissingHeader/InvalidHeaderValue): per merchant, the same key with the same
method, path and body answers the stored status and body; with anything else 400 DuplicateIdempotencyKey. Keys
are kept 24 hours (simulated clock) and at most `IDEMPOTENCY_KEYS_MAX` per merchant; 5xx answers are not stored,
so a retry after a server error runs again. The operations register their handlers here (`route`): checkout
sessions, charge permissions, charges, refunds, disputes and files in `sim_payments_api.py`; reports, documents and
disbursements in `sim_reporting_api.py`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from payments.amazon import sim_views as views
from payments.amazon.sim_auth import Caller, KeyRing, split_path, verify
from payments.amazon.sim_model import SimError, SimMerchant, StoredAnswer
from payments.amazon.sim_reports import Books

__all__ = [
    "IDEMPOTENCY_KEYS_MAX",
    "IDEMPOTENCY_TTL",
    "ApiHost",
    "Ctx",
    "Handler",
    "handle_api",
    "register_routes",
    "route",
]

log = logging.getLogger("kontor.simulator")
IDEMPOTENCY_KEYS_MAX = 10_000
IDEMPOTENCY_TTL = timedelta(hours=24)
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class ApiHost(Protocol):
    """What the API needs from the simulator object."""

    ring: KeyRing
    merchants: dict[str, SimMerchant]
    books: dict[str, Books]

    def now(self) -> datetime: ...


@dataclass
class Ctx:
    host: ApiHost
    caller: Caller
    merchant: SimMerchant
    environment: str
    now: datetime
    query: Sequence[tuple[str, str]]
    base_url: str
    params: tuple[str, ...]
    body: bytes


Handler = Callable[[Ctx], tuple[int, Any]]
_ROUTES: list[tuple[re.Pattern[str], dict[str, Handler]]] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    regex = re.compile("^" + pattern.replace("{id}", "([^/]+)") + "$")

    def add(handler: Handler) -> Handler:
        for known, methods in _ROUTES:
            if known.pattern == regex.pattern:
                methods[method] = handler
                return handler
        _ROUTES.append((regex, {method: handler}))
        return handler

    return add


def register_routes() -> None:
    """Import the modules whose handlers register themselves (payments, reporting) - called once by the app."""
    from payments.amazon import sim_payments_api, sim_reporting_api  # noqa: F401, PLC0415 - register on import


def _answer(status: int, payload: Any) -> tuple[int, bytes]:
    return status, json.dumps(payload, separators=(",", ":")).encode()


def _error(exc: SimError) -> tuple[int, bytes]:
    return _answer(exc.status, views.error_json(exc.reason_code, exc.message))


def handle_api(
    host: ApiHost,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    base_url: str,
) -> tuple[int, bytes, SimMerchant | None]:
    """One API request -> (status, JSON body, the merchant whose outbox may hold IPNs)."""
    merchant: SimMerchant | None = None
    try:
        handler, params = _match(method, path)
        caller = verify(host.ring, method, path, query, headers, body, datetime.now(UTC))
        if handler is exchange_token:
            return (*_exchange(host, caller, params[0], query, headers), None)
        merchant = _merchant(host, caller)
        _check_region(merchant, headers)
        ctx = Ctx(host, caller, merchant, caller.environment, host.now(), query, base_url, params, body)
        if method != "POST":
            return (*_run(handler, ctx), merchant)
        return (*_idempotent(ctx, handler, headers.get("x-amz-pay-idempotency-key"), f"{method} {path}"), merchant)
    except SimError as exc:
        return (*_error(exc), merchant)


def _match(method: str, path: str) -> tuple[Handler, tuple[str, ...]]:
    split = split_path(path)
    if split is None:
        raise SimError(404, "RequestNotSupported", f"{path} is not an Amazon Pay API path")
    api_path = split[1]
    for regex, methods in _ROUTES:
        found = regex.match(api_path)
        if found:
            handler = methods.get(method)
            if handler is None:
                raise SimError(405, "RequestNotSupported", f"{method} is not supported on {api_path}")
            return handler, found.groups()
    raise SimError(404, "RequestNotSupported", f"{api_path} is not an Amazon Pay API operation")


@route("GET", "/authorizationTokens/{id}")
def exchange_token(ctx: Ctx) -> tuple[int, Any]:
    """Routed here, answered by `_exchange` (the call has no merchant yet: it is how a provider gets one)."""
    raise SimError(500, "InternalServerError", "the token exchange is answered before the merchant is known")


def _merchant(host: ApiHost, caller: Caller) -> SimMerchant:
    if caller.merchant_id is None:
        raise SimError(401, "UnauthorizedAccess", "a solution provider key acts for a merchant via x-amz-pay-authtoken")
    merchant = host.merchants.get(caller.merchant_id)
    if merchant is None:
        raise SimError(401, "UnauthorizedAccess", f"merchant {caller.merchant_id} is not registered")
    return merchant


def _check_region(merchant: SimMerchant, headers: Mapping[str, str]) -> None:
    """A merchant account lives in one region (na, eu, jp): its keys do not work on another region's endpoint
    (Amazon: pay-api.amazon.com/.eu/.jp; here the signed x-amz-pay-region header says which one was meant)."""
    region = (headers.get("x-amz-pay-region") or "").strip().lower()
    if region and region != merchant.region:
        raise SimError(
            401,
            "UnauthorizedAccess",
            f"merchant {merchant.merchant_id} is registered in region {merchant.region}, not {region}",
        )


def _exchange(
    host: ApiHost,
    caller: Caller,
    mws_auth_token: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
) -> tuple[int, bytes]:
    """GET /v2/authorizationTokens/{mwsAuthToken}?merchantId=… (provider key): -> {authorizationToken}."""
    if caller.key.owner != "provider":
        raise SimError(401, "UnauthorizedAccess", "only a solution provider's key may exchange an MWS auth token")
    merchant_ids = [value for name, value in query if name == "merchantId"]
    if len(merchant_ids) != 1 or not merchant_ids[0]:
        raise SimError(400, "MissingParameterValue", "merchantId is required (once)")
    token = host.ring.exchange(caller.key.public_key_id, merchant_ids[0], mws_auth_token)
    merchant = host.merchants.get(merchant_ids[0])
    if merchant is not None:
        _check_region(merchant, headers)
    return _answer(200, {"authorizationToken": token})


def _run(handler: Handler, ctx: Ctx) -> tuple[int, bytes]:
    try:
        status, payload = handler(ctx)
    except SimError as exc:
        return _error(exc)
    except Exception:  # a simulator bug: answer like Amazon's 500, keep the traceback in the log
        log.exception("simulator operation failed")
        return _answer(500, views.error_json("InternalServerError", "the simulator failed; see its log"))
    return _answer(status, payload)


def _idempotent(ctx: Ctx, handler: Handler, key: str | None, target: str) -> tuple[int, bytes]:
    if key is None or not key.strip():
        raise SimError(400, "MissingHeader", "x-amz-pay-idempotency-key is required on POST")
    if not _KEY.match(key):
        raise SimError(400, "InvalidHeaderValue", "x-amz-pay-idempotency-key must be 1-32 characters [A-Za-z0-9_-]")
    store = ctx.merchant.idempotency
    fingerprint = hashlib.sha256(target.encode() + b"\n" + ctx.body).hexdigest()
    stored = store.get(key)
    if stored is not None and ctx.now - stored.stored_at > IDEMPOTENCY_TTL:
        del store[key]
        stored = None
    if stored is not None:
        if stored.fingerprint != fingerprint:
            raise SimError(400, "DuplicateIdempotencyKey", f"key {key} was used for another request")
        return stored.status, stored.body
    status, raw = _run(handler, ctx)
    if status < 500:
        store[key] = StoredAnswer(fingerprint, status, raw, ctx.now)
        while len(store) > IDEMPOTENCY_KEYS_MAX:
            store.popitem(last=False)
    return status, raw
