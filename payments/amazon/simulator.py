"""A local Amazon Pay: the MWS operations Kontor calls, signed IPNs back to Kontor, settlement reports.

Run it with `kontor simulate amazon-pay`; the tests start it in-process. It checks request signatures
with the developer secret it is given, keeps each seller's objects in memory (`sim_state`), sends every
state change as an SNS-signed IPN to `ipn_url` (signed by its own test root, `GET /sns/root.pem`), and
settles on request: `GET /sim/settlement-report` returns the flat-file CSV of reference/amazon-pay.md
§6.2 for everything posted since the last report (captures with fees, refunds, chargebacks with a fee,
the reserve and the payout). `GET /sim/balance` says what Amazon owes the merchant.
Control routes under /sim/ (register sellers, process refunds, file chargebacks, arm declines, move the
clock) exist for tests and development only.
"""

from __future__ import annotations

import asyncio
import csv
import hmac
import io
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring  # building XML only

import httpx
from litestar import Litestar, Request, Response, get, post

from ledger.money import format_amount, parse_amount
from payments.amazon import mws
from payments.amazon.sim_control import control_routes
from payments.amazon.sim_state import (
    CAPTURE_FEE_FIXED_MINOR,
    CAPTURE_FEE_PERMILLE,
    CHARGEBACK_FEE_MINOR,
    RESERVE_PERCENT,
    Seller,
    SettlementEvent,
    SimError,
    SimOrder,
)
from payments.amazon.sim_xml import (
    IPN_NAMESPACE,
    authorization_xml,
    capture_xml,
    iso,
    order_reference_xml,
    refund_xml,
)
from payments.amazon.sns import SigningIdentity

__all__ = ["AmazonPaySimulator"]

log = logging.getLogger("kontor.simulator")
MARKETPLACE = "A53RDEWN57UMW"
CERTIFICATE_PATH = "/SimpleNotificationService-kontor-simulator.pem"
SETTLEMENT_COLUMNS = [
    "TransactionPostedDate",
    "SettlementId",
    "AmazonTransactionId",
    "SellerReferenceId",
    "TransactionType",
    "AmazonOrderReferenceId",
    "SellerOrderId",
    "StoreName",
    "CurrencyCode",
    "TransactionDescription",
    "TransactionAmount",
    "TransactionPercentageFee",
    "TransactionFixedFee",
    "TotalTransactionFee",
    "NetTransactionAmount",
]


@dataclass
class _Books:
    """A seller's settlement position: reserve held, events already settled, settlements issued."""

    reserve: int = 0
    settled_events: int = 0
    settlements: int = 0
    fees: int = 0  # fees charged in settlements (negative)
    transferred: int = 0  # paid out (positive); balance repayments collected from the merchant count negative
    reserve_percent: int = RESERVE_PERCENT
    chargeback_fee_minor: int = CHARGEBACK_FEE_MINOR


@dataclass
class AmazonPaySimulator:
    access_keys: dict[str, str]  # AWSAccessKeyId -> secret key
    ipn_url: str | None = None
    identity: SigningIdentity = field(default_factory=SigningIdentity.generate)
    region: str = "eu-west-1"
    auto_register: bool = False
    clock_offset: timedelta = timedelta()
    sellers: dict[str, Seller] = field(default_factory=dict)
    books: dict[str, _Books] = field(default_factory=dict)
    sent: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    _http: httpx.AsyncClient | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.clock_offset

    def register(
        self,
        seller_id: str,
        mws_auth_token: str,
        *,
        decimals: int = 2,
        sandbox: bool = False,
        reserve_percent: int = RESERVE_PERCENT,
        chargeback_fee_minor: int = CHARGEBACK_FEE_MINOR,
    ) -> Seller:
        seller = self.sellers.setdefault(seller_id, Seller(seller_id, mws_auth_token, decimals, sandbox))
        self.books.setdefault(
            seller_id, _Books(reserve_percent=reserve_percent, chargeback_fee_minor=chargeback_fee_minor)
        )
        return seller

    # --- the MWS endpoint -----------------------------------------------------------------------------
    async def handle(self, request: Request[Any, Any, Any], sandbox: bool) -> Response[bytes]:
        form = dict(await request.form())
        params = {k: str(v) for k, v in form.items()}
        try:
            seller = self._authenticate(request, params)
            action = params.get("Action", "")
            result = self._dispatch(seller, action, params)
        except SimError as exc:
            status = 401 if exc.code in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied") else 400
            return self._error(exc, status)
        root = Element(f"{action}Response", xmlns=mws.NAMESPACE)
        wrapper = SubElement(root, f"{action}Result")
        if result is not None:
            wrapper.append(result)
        SubElement(SubElement(root, "ResponseMetadata"), "RequestId").text = str(uuid.uuid4())
        return Response(tostring(root), media_type="text/xml")

    def _error(self, exc: SimError, status: int) -> Response[bytes]:
        root = Element("ErrorResponse", xmlns=mws.NAMESPACE)
        error = SubElement(root, "Error")
        SubElement(error, "Type").text = "Sender"
        SubElement(error, "Code").text = exc.code
        SubElement(error, "Message").text = exc.message
        SubElement(root, "RequestId").text = str(uuid.uuid4())
        return Response(tostring(root), media_type="text/xml", status_code=status)

    def _authenticate(self, request: Request[Any, Any, Any], params: dict[str, str]) -> Seller:
        secret = self.access_keys.get(params.get("AWSAccessKeyId", ""))
        if secret is None:
            raise SimError("InvalidAccessKeyId", "unknown AWSAccessKeyId")
        given = params.pop("Signature", "")
        expected = mws.sign(secret, request.headers.get("host", ""), request.url.path, params)
        if not hmac.compare_digest(given, expected):
            raise SimError("SignatureDoesNotMatch", "the request signature does not match")
        seller_id, token = params.get("SellerId", ""), params.get("MWSAuthToken", "")
        seller = self.sellers.get(seller_id)
        if seller is None and self.auto_register and token:
            seller = self.register(seller_id, token)
        if seller is None or not hmac.compare_digest(seller.mws_auth_token, token):
            raise SimError("AccessDenied", "unknown seller or MWSAuthToken not granted to this developer")
        return seller

    def _amount(self, seller: Seller, params: dict[str, str], prefix: str) -> tuple[int, str]:
        currency = params.get(f"{prefix}.CurrencyCode", "")
        try:
            return parse_amount(params.get(f"{prefix}.Amount", ""), currency), currency
        except ValueError as exc:
            raise SimError("InvalidParameterValue", f"{prefix}: {exc}") from exc

    def _dispatch(self, seller: Seller, action: str, p: dict[str, str]) -> Element | None:
        operation = getattr(self, f"_op_{action}", None)
        if operation is None:
            raise SimError("InvalidAction", f"unsupported action {action!r}")
        try:
            result: Element | None = operation(seller, p, self.now())
        except KeyError as exc:
            raise SimError("MissingParameter", f"parameter {exc.args[0]} is required") from None
        return result

    def _op_SetOrderReferenceDetails(self, seller: Seller, p: dict[str, str], now: datetime) -> None:
        amount, currency = self._amount(seller, p, "OrderReferenceAttributes.OrderTotal")
        seller.set_details(
            p["AmazonOrderReferenceId"],
            amount,
            currency,
            p.get("OrderReferenceAttributes.SellerOrderAttributes.SellerOrderId", ""),
        )

    def _op_ConfirmOrderReference(self, seller: Seller, p: dict[str, str], now: datetime) -> None:
        self.order_changed(seller, seller.confirm(p["AmazonOrderReferenceId"]))

    def _op_CloseOrderReference(self, seller: Seller, p: dict[str, str], now: datetime) -> None:
        self.order_changed(seller, seller.close_order(p["AmazonOrderReferenceId"]))

    def _op_GetOrderReferenceDetails(self, seller: Seller, p: dict[str, str], now: datetime) -> Element:
        return order_reference_xml(seller.order(p["AmazonOrderReferenceId"]), now)

    def order_changed(self, seller: Seller, order: SimOrder) -> None:
        """Amazon notifies every order reference state change (OrderReferenceNotification)."""
        details = order_reference_xml(order, self.now(), "OrderReference")
        self._notify_later(seller, "OrderReferenceNotification", "OrderReferenceNotification", details)

    def _op_Authorize(self, seller: Seller, p: dict[str, str], now: datetime) -> Element:
        amount, currency = self._amount(seller, p, "AuthorizationAmount")
        auth = seller.authorize(
            p["AmazonOrderReferenceId"],
            p["AuthorizationReferenceId"],
            amount,
            currency,
            p.get("CaptureNow") == "true",
            p.get("SellerAuthorizationNote"),
            now,
        )
        self._notify_later(seller, "PaymentAuthorize", "AuthorizationNotification", authorization_xml(auth))
        for capture_id in auth.capture_ids:
            self._notify_later(
                seller, "PaymentCapture", "CaptureNotification", capture_xml(seller.captures[capture_id])
            )
        return authorization_xml(auth)

    def _op_GetAuthorizationDetails(self, seller: Seller, p: dict[str, str], now: datetime) -> Element:
        return authorization_xml(seller.authorization(p["AmazonAuthorizationId"], now))

    def _op_CloseAuthorization(self, seller: Seller, p: dict[str, str], now: datetime) -> None:
        seller.close_authorization(p["AmazonAuthorizationId"], now)

    def _op_Capture(self, seller: Seller, p: dict[str, str], now: datetime) -> Element:
        amount, currency = self._amount(seller, p, "CaptureAmount")
        capture = seller.capture_funds(
            p["AmazonAuthorizationId"], p["CaptureReferenceId"], amount, currency, p.get("SellerCaptureNote"), now
        )
        self._notify_later(seller, "PaymentCapture", "CaptureNotification", capture_xml(capture))
        return capture_xml(capture)

    def _op_GetCaptureDetails(self, seller: Seller, p: dict[str, str], now: datetime) -> Element:
        return capture_xml(seller.capture(p["AmazonCaptureId"]))

    def _op_Refund(self, seller: Seller, p: dict[str, str], now: datetime) -> Element:
        amount, currency = self._amount(seller, p, "RefundAmount")
        refund = seller.refund(
            p["AmazonCaptureId"], p["RefundReferenceId"], amount, currency, p.get("SellerRefundNote"), now
        )
        return refund_xml(refund)

    def _op_GetRefundDetails(self, seller: Seller, p: dict[str, str], now: datetime) -> Element:
        found = seller.refunds.get(p["AmazonRefundId"])
        if found is None:
            raise SimError("InvalidRefundId", "unknown refund")
        return refund_xml(found)

    # --- IPNs -----------------------------------------------------------------------------------------
    def _envelope(
        self, seller: Seller, notification_type: str, root_tag: str, details: Element
    ) -> tuple[bytes, dict[str, str]]:
        data = Element(root_tag, xmlns=IPN_NAMESPACE)
        data.append(details)
        now = self.now()
        message = {
            "NotificationReferenceId": str(uuid.uuid4()),
            "MarketplaceID": MARKETPLACE,
            "NotificationType": notification_type,
            "SellerId": seller.seller_id,
            "ReleaseEnvironment": "Sandbox",
            "Version": mws.API_VERSION,
            "Timestamp": iso(now),
            "NotificationData": tostring(data).decode(),
        }
        topic = f"arn:aws:sns:{self.region}:291180941288:{MARKETPLACE}{seller.seller_id}"
        envelope: dict[str, Any] = {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": topic,
            "Message": json.dumps(message),
            "Timestamp": iso(now),
            "SignatureVersion": "2",
            "SigningCertURL": f"https://sns.{self.region}.amazonaws.com{CERTIFICATE_PATH}",
            "UnsubscribeURL": f"https://sns.{self.region}.amazonaws.com/?Action=Unsubscribe",
        }
        envelope["Signature"] = self.identity.sign(envelope)
        headers = {
            "x-amz-sns-message-type": "Notification",
            "x-amz-sns-message-id": envelope["MessageId"],
            "x-amz-sns-topic-arn": topic,
            "content-type": "text/plain; charset=UTF-8",
        }
        return json.dumps(envelope).encode(), headers

    async def deliver(self, body: bytes, headers: dict[str, str]) -> int | None:
        """POST one IPN to `ipn_url` (retried three times, like a patient SNS); returns the last status."""
        self.sent.append((body, headers))
        if not self.ipn_url:
            return None
        self._http = self._http or httpx.AsyncClient()
        status = None
        for attempt in range(3):
            try:
                response = await self._http.post(self.ipn_url, content=body, headers=headers, timeout=10.0)
                status = response.status_code
                if status == 200:
                    return status
            except httpx.HTTPError as exc:
                log.warning("ipn delivery failed: %s", exc)
            await asyncio.sleep(0.2 * (attempt + 1))
        return status

    def _notify_later(self, seller: Seller, notification_type: str, root_tag: str, details: Element) -> None:
        body, headers = self._envelope(seller, notification_type, root_tag, details)
        task = asyncio.get_running_loop().create_task(self._deliver_quietly(body, headers))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_quietly(self, body: bytes, headers: dict[str, str]) -> None:
        await self.deliver(body, headers)

    async def notify(self, seller: Seller, notification_type: str, root_tag: str, details: Element) -> int | None:
        return await self.deliver(*self._envelope(seller, notification_type, root_tag, details))

    async def idle(self) -> None:
        """Wait until every IPN started so far has been delivered (or given up)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- settlement -----------------------------------------------------------------------------------
    def owed(self, seller: Seller) -> tuple[int, int]:
        """What Amazon owes the merchant outside the reserve, and the reserve it holds."""
        books = self.books[seller.seller_id]
        return sum(e.amount for e in seller.events) + books.fees - books.reserve - books.transferred, books.reserve

    def settlement_report(self, seller: Seller) -> str:
        books = self.books[seller.seller_id]
        events = seller.events[books.settled_events :]
        books.settled_events = len(seller.events)
        books.settlements += 1
        settlement_id = f"{seller.seller_id[-4:]}{books.settlements:06d}"
        now = self.now()
        start = events[0].posted_at if events else now
        currency = next(iter(seller.orders.values())).currency if seller.orders else "EUR"
        rows = [self._row(seller, settlement_id, e, currency, books) for e in events]
        captured = sum(e.amount for e in events if e.type == "Capture")
        new_reserve = captured * books.reserve_percent // 100
        if books.reserve:
            rows.append(
                self._plain_row(settlement_id, now, "Reserve", "Previous Reserve Balance", books.reserve, currency)
            )
        if new_reserve:
            rows.append(
                self._plain_row(settlement_id, now, "Reserve", "Current Reserve Amount", -new_reserve, currency)
            )
        books.fees += sum(r["_fee"] for r in rows)
        books.reserve = new_reserve
        payout = sum(r["_net"] for r in rows)
        if payout:  # a negative balance is collected from the merchant's bank account (balance repayment)
            text = f"SellerPayments transfer {settlement_id}" if payout > 0 else f"Balance repayment {settlement_id}"
            rows.append(self._plain_row(settlement_id, now, "Transfer", text, -payout, currency))
            books.transferred += payout
        return self._csv(seller, rows, start, now)

    def _row(
        self, seller: Seller, settlement_id: str, event: SettlementEvent, currency: str, books: _Books
    ) -> dict[str, Any]:
        pct = fixed = 0
        if event.type == "Capture":
            pct = -((event.amount * CAPTURE_FEE_PERMILLE + 500) // 1000)  # 1.9 %, half-up
            fixed = -CAPTURE_FEE_FIXED_MINOR
        elif event.type == "Chargeback" and event.amount < 0:  # paying one back costs no fee
            fixed = -books.chargeback_fee_minor
        order = seller.orders.get(event.order_reference_id)
        return {
            "_fee": pct + fixed,
            "_net": event.amount + pct + fixed,
            "TransactionPostedDate": event.posted_at,
            "SettlementId": settlement_id,
            "AmazonTransactionId": event.transaction_id,
            "SellerReferenceId": event.seller_reference_id,
            "TransactionType": event.type,
            "AmazonOrderReferenceId": event.order_reference_id,
            "SellerOrderId": order.seller_order_id if order else "",
            "StoreName": "",
            "CurrencyCode": currency,
            "TransactionDescription": "",
            "_amount": event.amount,
            "_pct": pct,
            "_fixed": fixed,
        }

    @staticmethod
    def _plain_row(
        settlement_id: str, at: datetime, kind: str, description: str, amount: int, currency: str
    ) -> dict[str, Any]:
        return {
            "_fee": 0,
            "_net": amount,
            "TransactionPostedDate": at,
            "SettlementId": settlement_id,
            "AmazonTransactionId": "",
            "SellerReferenceId": "",
            "TransactionType": kind,
            "AmazonOrderReferenceId": "",
            "SellerOrderId": "",
            "StoreName": "",
            "CurrencyCode": currency,
            "TransactionDescription": description,
            "_amount": amount,
            "_pct": 0,
            "_fixed": 0,
        }

    @staticmethod
    def _csv(seller: Seller, rows: list[dict[str, Any]], start: datetime, end: datetime) -> str:
        out = io.StringIO()
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        stamp = "%Y-%m-%dT%H:%M:%S +0000"
        out.write('"Amazon Payments Advanced",\n"Settlement Report",\n')
        writer.writerow(["SellerId", seller.seller_id])
        writer.writerow(["SettlementStartDate", start.strftime(stamp)])
        writer.writerow(["SettlementEndDate", end.strftime(stamp)])
        out.write(",".join(f'"{c}"' for c in SETTLEMENT_COLUMNS) + ",\n")
        for r in rows:
            currency = r["CurrencyCode"]
            values = [
                r["TransactionPostedDate"].strftime(stamp),
                r["SettlementId"],
                r["AmazonTransactionId"],
                r["SellerReferenceId"],
                r["TransactionType"],
                r["AmazonOrderReferenceId"],
                r["SellerOrderId"],
                r["StoreName"],
                currency,
                r["TransactionDescription"],
                format_amount(r["_amount"], currency),
                format_amount(r["_pct"], currency),
                format_amount(r["_fixed"], currency),
                format_amount(r["_fee"], currency),
                format_amount(r["_net"], currency),
            ]
            out.write(",".join(f'"{v}"' for v in values) + ",\n")
        return out.getvalue()

    # --- the app --------------------------------------------------------------------------------------
    def app(self) -> Litestar:
        return build_app(self)


def build_app(sim: AmazonPaySimulator) -> Litestar:
    @post(mws.api_path(False), status_code=200)
    async def live(request: Request[Any, Any, Any]) -> Response[bytes]:
        return await sim.handle(request, sandbox=False)

    @post(mws.api_path(True), status_code=200)
    async def sandbox(request: Request[Any, Any, Any]) -> Response[bytes]:
        return await sim.handle(request, sandbox=True)

    @get(CERTIFICATE_PATH, media_type="application/x-pem-file")
    async def certificate() -> bytes:
        return sim.identity.certificate_pem()

    @get("/sns/root.pem", media_type="application/x-pem-file")
    async def root() -> bytes:
        return sim.identity.root_pem()

    return Litestar(route_handlers=[live, sandbox, certificate, root, *control_routes(sim)], logging_config=None)
