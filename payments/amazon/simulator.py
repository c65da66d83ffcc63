"""A local Amazon Pay API v2 (Checkout v2): the operations Kontor calls, signed IPNs back to Kontor, settlement.

Why: Amazon cannot be reached from development and tests, and its sandbox cannot be driven (no buyer, no
chargebacks, no clock). `kontor simulate amazon-pay` runs this as a process; the tests start it in-process.

What it is made of: `sim_auth` (keys, providers, delegated tokens, signature checks), `sim_api` and
`sim_reporting_api` (the v2 routes), `sim_state` and `sim_postsale` (the state machines), `sim_views` (the
published JSON shapes), `sim_reports` (settlement books, reports, disbursements), `sim_control` (the /sim/
control routes, with their table). This module holds the simulator object, the Litestar app, the pre-signed
URLs (report documents, evidence uploads) and the IPNs.

IPNs (developer.amazon.com/docs/amazon-pay-checkout/set-up-instant-payment-notifications.html): every state
change of a charge, refund, charge permission and dispute is an SNS `Notification` (SignatureVersion 2, signed
by the simulator's own root `identity`, SigningCertURL on sns.<aws-region>.amazonaws.com, served at
`CERTIFICATE_PATH`), POSTed to `ipn_url` in the background (tracked for `idle()`, 3 attempts). Its `Message` is
a JSON string with exactly MerchantID, ObjectType (CHARGE | REFUND | CHARGE_PERMISSION | CHARGEBACK), ObjectId,
ChargePermissionId, NotificationType (STATE_CHANGE), NotificationId (uuid), NotificationVersion ("V2").
Payment notifications come from AWS account 291180941288, chargeback notifications from 598607868003; the
topic names are the simulator's (Amazon does not publish them). Amazon Pay does not document a Subject, so the
envelope has none. The creation of a charge permission is not notified (only its later state changes).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qsl

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar import Litestar, Request, Response, get, put, route
from litestar.exceptions import MethodNotAllowedException, NotFoundException, ValidationException
from litestar.params import PathParameter

from ledger.money import currency_decimals, is_known_currency
from payments.amazon import sim_postsale, sim_state
from payments.amazon.sim_api import handle_api, register_routes
from payments.amazon.sim_auth import KeyRecord, KeyRing, key_environment, new_public_key_id
from payments.amazon.sim_control import control_routes, error_response
from payments.amazon.sim_model import Failure, SimError, SimMerchant
from payments.amazon.sim_reports import Books, close_period, open_document, owed
from payments.amazon.sns import SigningIdentity

__all__ = [
    "CERTIFICATE_PATH",
    "CHARGEBACK_ACCOUNT",
    "PAYMENT_ACCOUNT",
    "AmazonPaySimulator",
    "private_key_pem",
    "public_key_pem",
]

log = logging.getLogger("kontor.simulator")
CERTIFICATE_PATH = "/SimpleNotificationService-kontor-simulator.pem"
PAYMENT_ACCOUNT, CHARGEBACK_ACCOUNT = "291180941288", "598607868003"
AWS_REGIONS = {"na": "us-east-1", "eu": "eu-west-1", "jp": "us-west-2"}
DEFAULT_CURRENCY = {"na": "USD", "eu": "EUR", "jp": "JPY"}
BODY_BYTES_MAX = 1 << 20
UPLOAD_BYTES_MAX = 10 << 20
SENT_MAX = 10_000
MERCHANTS_MAX = 100_000
Token = Annotated[str, PathParameter(max_length=128)]


def private_key_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_key_pem(key: rsa.RSAPublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _failure(failure: Failure) -> Response[bytes]:
    """The answer a failure injected by /sim/failures gives."""
    headers = {"retry-after": str(failure.retry_after_s)} if failure.retry_after_s is not None else {}
    return Response(
        json.dumps({"reasonCode": failure.reason_code, "message": "injected by /sim/failures"}).encode(),
        status_code=failure.status,
        media_type="application/json",
        headers=headers,
    )


def _json(status: int, payload: Any) -> Response[bytes]:
    return Response(json.dumps(payload).encode(), status_code=status, media_type="application/json")


@dataclass
class AmazonPaySimulator:
    """The simulated Amazon Pay; `app()` serves it. Public attributes are for tests and the control routes."""

    ipn_url: str | None = None
    identity: SigningIdentity = field(default_factory=SigningIdentity.generate)
    clock_offset: timedelta = timedelta()
    ipn_attempts_max: int = 3
    ring: KeyRing = field(default_factory=KeyRing)
    merchants: dict[str, SimMerchant] = field(default_factory=dict)
    books: dict[str, Books] = field(default_factory=dict)
    sent: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    _http: httpx.AsyncClient | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def now(self) -> datetime:
        """The simulated clock: real time plus `clock_offset` (signature dates are checked against real time)."""
        return datetime.now(UTC) + self.clock_offset

    # --- accounts -------------------------------------------------------------------------------------------
    def register_merchant(
        self,
        merchant_id: str | None = None,
        *,
        region: str = "eu",
        currency: str | None = None,
        environment: str = "Sandbox",
        public_key: rsa.RSAPublicKey | None = None,
        public_key_id: str | None = None,
        reserve_percent: int | None = None,
        chargeback_fee_minor: int | None = None,
    ) -> tuple[SimMerchant, str, str | None]:
        """A merchant (created, or found again) and one more API key: -> (merchant, public key id, private PEM
        when the simulator generated the pair - returned once, like Integration Central's "Generate API
        credentials"; None when `public_key` was given, "use an existing public key")."""
        money = currency or DEFAULT_CURRENCY.get(region, "EUR")
        if region not in AWS_REGIONS or not is_known_currency(money) or currency_decimals(money) > 3:
            raise SimError(400, "InvalidParameterValue", "region must be na|eu|jp and currency a known ISO 4217 code")
        merchant_id = merchant_id or "A" + secrets.token_hex(6).upper() + "X"
        merchant = self.merchants.get(merchant_id)
        if merchant is None:
            if len(self.merchants) >= MERCHANTS_MAX:
                raise SimError(400, "InvalidRequest", "too many merchants")
            merchant = SimMerchant(merchant_id, region, money)
            self.merchants[merchant_id], self.books[merchant_id] = merchant, Books()
        if reserve_percent is not None:
            merchant.reserve_percent = reserve_percent
        if chargeback_fee_minor is not None:
            merchant.chargeback_fee_minor = chargeback_fee_minor
        key_id, private_pem = self._add_key("merchant", merchant_id, environment, public_key, public_key_id)
        return merchant, key_id, private_pem

    def register_provider(
        self,
        public_key_id: str | None = None,
        public_key: rsa.RSAPublicKey | None = None,
        *,
        environment: str = "Sandbox",
    ) -> tuple[str, str | None]:
        """A solution provider's key pair (Kontor's, when it acts for merchants): -> (key id, private PEM if made)."""
        return self._add_key("provider", public_key_id or "", environment, public_key, public_key_id)

    def _add_key(
        self, owner: str, owner_id: str, environment: str, key: rsa.RSAPublicKey | None, key_id: str | None
    ) -> tuple[str, str | None]:
        private_pem = None
        if key is None:
            generated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            key, private_pem = generated.public_key(), private_key_pem(generated)
        key_id = key_id or new_public_key_id(environment)
        named = key_environment(key_id)
        if named is not None and named != environment:
            raise SimError(400, "InvalidParameterValue", f"public key id {key_id} names the {named} environment")
        self.ring.add(KeyRecord(key_id, key, owner, owner_id or key_id, environment))
        return key_id, private_pem

    def grant_mws_auth_token(self, provider_key_id: str, merchant_id: str) -> str:
        """The merchant authorizes the provider (Seller Central, MWS Authorizations): -> `amzn.mws.<uuid>`."""
        self.merchant(merchant_id)
        return self.ring.grant(provider_key_id, merchant_id)

    def merchant(self, merchant_id: str) -> SimMerchant:
        found = self.merchants.get(merchant_id)
        if found is None:
            raise SimError(404, "ResourceNotFound", f"unknown merchant {merchant_id}")
        return found

    # --- settlement -----------------------------------------------------------------------------------------
    def owed(self, merchant: SimMerchant) -> tuple[int, int]:
        """What Amazon owes the merchant outside the reserve, and the reserve (minor units)."""
        return owed(merchant, self.books[merchant.merchant_id])

    def settlement_report(self, merchant: SimMerchant) -> str:
        """Close a settlement period now: -> the flat-file CSV (also listed by GET /reports)."""
        return close_period(merchant, self.books[merchant.merchant_id], self.now())[1]

    def advance(self, delta: timedelta) -> None:
        """Move the simulated clock; lifetimes run out, pending authorizations and captures are processed."""
        self.clock_offset += delta
        now = self.now()
        for merchant in self.merchants.values():
            sim_state.sweep(merchant, now)
            sim_state.process_charges(merchant, now)
            for dispute in list(merchant.disputes.values()):
                sim_postsale.find_dispute(merchant, dispute.environment, dispute.dispute_id, now)
            self.flush(merchant)

    # --- IPNs -----------------------------------------------------------------------------------------------
    def flush(self, merchant: SimMerchant) -> None:
        """Send the IPNs the last operation queued (needs a running event loop)."""
        queued, merchant.outbox = merchant.outbox, []
        for object_type, object_id, permission_id in queued:
            body, headers = self.envelope(merchant, object_type, object_id, permission_id)
            task = asyncio.get_running_loop().create_task(self._deliver_quietly(body, headers))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def envelope(
        self, merchant: SimMerchant, object_type: str, object_id: str, permission_id: str
    ) -> tuple[bytes, dict[str, str]]:
        message = {
            "MerchantID": merchant.merchant_id,
            "ObjectType": object_type,
            "ObjectId": object_id,
            "ChargePermissionId": permission_id,
            "NotificationType": "STATE_CHANGE",
            "NotificationId": str(uuid.uuid4()),
            "NotificationVersion": "V2",
        }
        aws_region = AWS_REGIONS.get(merchant.region, "eu-west-1")
        account, name = (
            (CHARGEBACK_ACCOUNT, f"AmazonPayDisputes-{merchant.merchant_id}")
            if object_type == "CHARGEBACK"
            else (PAYMENT_ACCOUNT, f"AmazonPay-{merchant.merchant_id}")
        )
        topic = f"arn:aws:sns:{aws_region}:{account}:{name}"
        subscription = f"{topic}:{uuid.uuid4()}"
        now = self.now()
        envelope: dict[str, Any] = {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": topic,
            "Message": json.dumps(message),
            "Timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "SignatureVersion": "2",
            "SigningCertURL": f"https://sns.{aws_region}.amazonaws.com{CERTIFICATE_PATH}",
            "UnsubscribeURL": f"https://sns.{aws_region}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={subscription}",
        }
        envelope["Signature"] = self.identity.sign(envelope)
        headers = {
            "x-amz-sns-message-type": "Notification",
            "x-amz-sns-message-id": envelope["MessageId"],
            "x-amz-sns-topic-arn": topic,
            "x-amz-sns-subscription-arn": subscription,
            "content-type": "text/plain; charset=UTF-8",
            "user-agent": "Amazon Simple Notification Service Agent",
        }
        return json.dumps(envelope).encode(), headers

    async def deliver(self, body: bytes, headers: dict[str, str]) -> int | None:
        """POST one IPN to `ipn_url` (up to `ipn_attempts_max` attempts until a 2xx); -> the last status."""
        self.sent.append((body, headers))
        if len(self.sent) > SENT_MAX:
            del self.sent[: SENT_MAX // 2]
        if not self.ipn_url:
            return None
        self._http = self._http or httpx.AsyncClient()
        status = None
        for attempt in range(self.ipn_attempts_max):
            try:
                response = await self._http.post(self.ipn_url, content=body, headers=headers, timeout=10.0)
                status = response.status_code
                if 200 <= status < 300:
                    return status
            except httpx.HTTPError as exc:
                log.warning("ipn delivery failed: %s", exc)
            await asyncio.sleep(0.2 * (attempt + 1))
        return status

    async def _deliver_quietly(self, body: bytes, headers: dict[str, str]) -> None:
        await self.deliver(body, headers)

    async def idle(self) -> None:
        """Wait until every IPN delivery started so far has finished (or given up)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Finish the IPN deliveries and close their HTTP client (the app's shutdown; tests call it too)."""
        await self.idle()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # --- the app --------------------------------------------------------------------------------------------
    async def serve_api(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        failure = next((f for f in self.failures if f.method in (None, request.method)), None)
        if failure is not None:
            self.failures.remove(failure)
        if failure is not None and not failure.after:
            return _failure(failure)
        answer = await self._answer(request)
        return answer if failure is None else _failure(failure)

    async def _answer(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        body = await request.body()
        if len(body) > BODY_BYTES_MAX:
            return _json(400, {"reasonCode": "InvalidRequestFormat", "message": "the body exceeds 1 MiB"})
        query = parse_qsl(request.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        headers = {name.lower(): value for name, value in request.headers.items()}
        base_url = str(request.base_url).rstrip("/")
        status, raw, merchant = handle_api(self, request.method, request.scope["path"], query, headers, body, base_url)
        if merchant is not None:
            self.flush(merchant)
        return Response(raw, status_code=status, media_type="application/json")

    def app(self) -> Litestar:
        return build_app(self)


def build_app(sim: AmazonPaySimulator) -> Litestar:
    register_routes()
    methods: list[Any] = ["GET", "POST", "PUT", "PATCH", "DELETE"]

    @route(["/live/v2/{rest:path}", "/sandbox/v2/{rest:path}", "/v2/{rest:path}"], http_method=methods)
    async def api(request: Request[Any, Any, Any]) -> Response[bytes]:
        return await sim.serve_api(request)

    @get(CERTIFICATE_PATH, media_type="application/x-pem-file")
    async def certificate() -> bytes:
        return sim.identity.certificate_pem()

    @get("/sns/root.pem", media_type="application/x-pem-file")
    async def root() -> bytes:
        return sim.identity.root_pem()

    @get("/s3/report-documents/{token:str}", media_type="text/csv")
    async def document(token: Token) -> Response[bytes]:
        for books in sim.books.values():
            content = open_document(books, token, sim.now())
            if content is not None:
                return Response(content, media_type="text/csv")
        return Response(b"<Error><Code>AccessDenied</Code></Error>", status_code=403, media_type="application/xml")

    @put("/s3/uploads/{merchant_id:str}/{token:str}", status_code=200)
    async def upload(request: Request[Any, Any, Any], merchant_id: Token, token: Token) -> Response[bytes]:
        return await _upload(sim, request, merchant_id, token)

    def not_supported(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
        status = 405 if isinstance(exc, MethodNotAllowedException) else 404
        return _json(status, {"reasonCode": "RequestNotSupported", "message": f"{request.method} {request.url.path}"})

    def invalid(request: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
        """A control route's query parameter is missing or wrong (bodies are decoded by the routes themselves)."""
        problems = exc.extra if isinstance(exc.extra, list) else []
        first = problems[0] if problems and isinstance(problems[0], dict) else {}
        message = str(first.get("message") or exc.detail)
        named = first.get("key") or next(iter(re.findall(r"parameter '([a-z_]+)'", message)), None)
        code = "MissingParameterValue" if message.startswith("Missing") else "InvalidParameterValue"
        payload = {"reasonCode": code, "message": message}
        if named:
            payload["field"] = str(named)
        return _json(400, payload)

    return Litestar(
        route_handlers=[api, certificate, root, document, upload, *control_routes(sim)],
        exception_handlers={
            NotFoundException: not_supported,
            MethodNotAllowedException: not_supported,
            ValidationException: invalid,
            SimError: error_response,
        },
        request_max_body_size=UPLOAD_BYTES_MAX + 1,
        on_shutdown=[sim.aclose],
        logging_config=None,
    )


async def _upload(
    sim: AmazonPaySimulator, request: Request[Any, Any, Any], merchant_id: str, token: str
) -> Response[bytes]:
    """PUT to an evidence upload URL (pre-signed style: the token is the credential, valid 15 minutes)."""
    merchant = sim.merchants.get(merchant_id)
    file_id = merchant.uploads.get(token) if merchant else None
    found = merchant.files.get(file_id) if merchant and file_id else None
    if found is None or found.url_expires_at <= sim.now() or found.content is not None:
        return Response(b"<Error><Code>AccessDenied</Code></Error>", status_code=403, media_type="application/xml")
    content = await request.body()
    if not content or len(content) > UPLOAD_BYTES_MAX:
        return Response(b"<Error><Code>EntityTooLarge</Code></Error>", status_code=400, media_type="application/xml")
    found.content = content
    return Response(b"", status_code=200)
