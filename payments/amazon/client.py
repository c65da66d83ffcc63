"""The Amazon Pay gateway: the MWS-era operations Kontor performs on a merchant's behalf.

Calls carry the merchant's SellerId and MWSAuthToken (delegated access) and are signed with Kontor's
developer key. Every state-changing call carries a reference id derived from the order (`<order>-a1`,
`<order>-c1`, `<refund ref>`): Amazon treats a repeated call with the same reference id and parameters
as the same call, so a retry after a lost response never authorizes, captures or refunds twice.
Network errors, 5xx and throttling are retried (bounded, with backoff); Amazon's refusals are not.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.etree.ElementTree import Element  # type only; parsing goes through defusedxml

import httpx

from ledger.money import format_amount, parse_amount
from payments.amazon import mws

__all__ = [
    "AmazonPayError",
    "AmazonPayGateway",
    "AuthorizationDetails",
    "CaptureDetails",
    "Credentials",
    "OrderReferenceDetails",
    "RefundDetails",
]

log = logging.getLogger("kontor.amazon_pay")
REGION_HOSTS = {
    "eu": "https://mws-eu.amazonservices.com",
    "uk": "https://mws-eu.amazonservices.com",
    "na": "https://mws.amazonservices.com",
    "jp": "https://mws.amazonservices.jp",
}
RETRY_ATTEMPTS_MAX = 3
_RETRYABLE_CODES = frozenset({"RequestThrottled", "InternalServerError", "ServiceUnavailable"})


@dataclass(frozen=True, slots=True)
class Credentials:
    """A merchant's delegated access (never logged: the token is a secret)."""

    seller_id: str
    mws_auth_token: str
    region: str
    sandbox: bool

    def __repr__(self) -> str:
        return f"Credentials(seller_id={self.seller_id!r}, region={self.region!r}, sandbox={self.sandbox})"


class AmazonPayError(Exception):
    """Amazon refused the call (code and message from its ErrorResponse), or could not be reached."""

    def __init__(self, code: str, message: str, *, reachable: bool = True) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.reachable = code, message, reachable


@dataclass(frozen=True, slots=True)
class OrderReferenceDetails:
    order_reference_id: str
    state: str
    reason: str | None
    amount_minor: int


@dataclass(frozen=True, slots=True)
class AuthorizationDetails:
    authorization_id: str
    reference_id: str
    amount_minor: int
    captured_minor: int
    state: str
    reason: str | None
    expires_at: datetime | None
    capture_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CaptureDetails:
    capture_id: str
    reference_id: str
    amount_minor: int
    refunded_minor: int
    state: str
    reason: str | None
    refund_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RefundDetails:
    refund_id: str
    reference_id: str
    amount_minor: int
    state: str
    reason: str | None
    refund_type: str


def _money(element: Element, path: str, currency: str) -> int:
    node = element.find(path)
    if node is None:
        return 0
    amount, code = mws.text(node, "Amount", "0"), mws.text(node, "CurrencyCode", currency)
    if code != currency:
        raise AmazonPayError("CurrencyMismatch", f"Amazon answered in {code}, the business code books {currency}")
    return parse_amount(amount or "0", currency, allow_zero=True)


def _ids(element: Element, path: str) -> tuple[str, ...]:
    return tuple(m.text.strip() for m in element.findall(f"{path}/member") if m.text)


def _timestamp(value: str | None) -> datetime | None:
    return None if not value else datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _status(element: Element, path: str) -> tuple[str, str | None]:
    status = mws.child(element, path)
    return mws.text(status, "State") or "", mws.text(status, "ReasonCode")


class AmazonPayGateway:
    """One client per process; `endpoint` overrides Amazon's hosts (the simulator, a proxy)."""

    def __init__(
        self, *, access_key_id: str, secret_key: str, http: httpx.AsyncClient, endpoint: str | None = None
    ) -> None:
        self._access_key_id, self._secret_key, self._http, self._endpoint = access_key_id, secret_key, http, endpoint

    async def _call(self, creds: Credentials, action: str, params: dict[str, str]) -> Element:
        base = self._endpoint or REGION_HOSTS[creds.region]
        path = mws.api_path(creds.sandbox)
        for attempt in range(1, RETRY_ATTEMPTS_MAX + 1):
            try:
                return await self._send(base, path, creds, action, params)
            except AmazonPayError as exc:
                if (exc.reachable and exc.code not in _RETRYABLE_CODES) or attempt == RETRY_ATTEMPTS_MAX:
                    raise
                log.warning("amazon pay call retried", extra={"action": action, "code": exc.code, "attempt": attempt})
                await asyncio.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    async def _send(self, base: str, path: str, creds: Credentials, action: str, params: dict[str, str]) -> Element:
        signed = {
            "AWSAccessKeyId": self._access_key_id,
            "Action": action,
            "SellerId": creds.seller_id,
            "MWSAuthToken": creds.mws_auth_token,
            "SignatureMethod": "HmacSHA256",
            "SignatureVersion": "2",
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": mws.API_VERSION,
            **params,
        }
        signed["Signature"] = mws.sign(self._secret_key, httpx.URL(base).netloc.decode(), path, signed)
        try:
            response = await self._http.post(base + path, data=signed, timeout=10.0)
        except httpx.HTTPError as exc:
            raise AmazonPayError("Unreachable", f"{type(exc).__name__}: {exc}", reachable=False) from exc
        try:
            root = mws.parse(response.content)
        except Exception as exc:
            raise AmazonPayError(
                "InvalidResponse", f"HTTP {response.status_code}, not XML", reachable=response.status_code < 500
            ) from exc
        if root.tag == "ErrorResponse":
            error = mws.child(root, "Error")
            raise AmazonPayError(
                mws.text(error, "Code") or "Error",
                mws.text(error, "Message") or "",
                reachable=response.status_code < 500,
            )
        return mws.child(root, f"{action}Result")

    # --- order reference ------------------------------------------------------------------------------
    async def set_order_reference_details(
        self, creds: Credentials, order_reference_id: str, amount: int, currency: str, seller_order_id: str
    ) -> None:
        await self._call(
            creds,
            "SetOrderReferenceDetails",
            {
                "AmazonOrderReferenceId": order_reference_id,
                "OrderReferenceAttributes.OrderTotal.Amount": format_amount(amount, currency),
                "OrderReferenceAttributes.OrderTotal.CurrencyCode": currency,
                "OrderReferenceAttributes.SellerOrderAttributes.SellerOrderId": seller_order_id,
            },
        )

    async def confirm_order_reference(self, creds: Credentials, order_reference_id: str) -> None:
        await self._call(creds, "ConfirmOrderReference", {"AmazonOrderReferenceId": order_reference_id})

    async def get_order_reference_details(
        self, creds: Credentials, order_reference_id: str, currency: str
    ) -> OrderReferenceDetails:
        result = await self._call(creds, "GetOrderReferenceDetails", {"AmazonOrderReferenceId": order_reference_id})
        details = mws.child(result, "OrderReferenceDetails")
        state, reason = _status(details, "OrderReferenceStatus")
        return OrderReferenceDetails(order_reference_id, state, reason, _money(details, "OrderTotal", currency))

    async def close_order_reference(self, creds: Credentials, order_reference_id: str, reason: str) -> None:
        await self._call(
            creds, "CloseOrderReference", {"AmazonOrderReferenceId": order_reference_id, "ClosureReason": reason[:1024]}
        )

    # --- authorizations -------------------------------------------------------------------------------
    async def authorize(
        self,
        creds: Credentials,
        order_reference_id: str,
        reference_id: str,
        amount: int,
        currency: str,
        *,
        capture_now: bool,
        note: str | None = None,
    ) -> AuthorizationDetails:
        params = {
            "AmazonOrderReferenceId": order_reference_id,
            "AuthorizationReferenceId": reference_id,
            "AuthorizationAmount.Amount": format_amount(amount, currency),
            "AuthorizationAmount.CurrencyCode": currency,
            "CaptureNow": str(capture_now).lower(),
            "TransactionTimeout": "0",
        }
        if note:
            params["SellerAuthorizationNote"] = note
        return self._authorization(
            mws.child(await self._call(creds, "Authorize", params), "AuthorizationDetails"), currency
        )

    async def get_authorization_details(
        self, creds: Credentials, authorization_id: str, currency: str
    ) -> AuthorizationDetails:
        result = await self._call(creds, "GetAuthorizationDetails", {"AmazonAuthorizationId": authorization_id})
        return self._authorization(mws.child(result, "AuthorizationDetails"), currency)

    async def close_authorization(self, creds: Credentials, authorization_id: str, reason: str) -> None:
        await self._call(
            creds, "CloseAuthorization", {"AmazonAuthorizationId": authorization_id, "ClosureReason": reason[:255]}
        )

    @staticmethod
    def _authorization(details: Element, currency: str) -> AuthorizationDetails:
        state, reason = _status(details, "AuthorizationStatus")
        return AuthorizationDetails(
            authorization_id=mws.text(details, "AmazonAuthorizationId") or "",
            reference_id=mws.text(details, "AuthorizationReferenceId") or "",
            amount_minor=_money(details, "AuthorizationAmount", currency),
            captured_minor=_money(details, "CapturedAmount", currency),
            state=state,
            reason=reason,
            expires_at=_timestamp(mws.text(details, "ExpirationTimestamp")),
            capture_ids=_ids(details, "IdList"),
        )

    # --- captures -------------------------------------------------------------------------------------
    async def capture(
        self,
        creds: Credentials,
        authorization_id: str,
        reference_id: str,
        amount: int,
        currency: str,
        note: str | None = None,
    ) -> CaptureDetails:
        params = {
            "AmazonAuthorizationId": authorization_id,
            "CaptureReferenceId": reference_id,
            "CaptureAmount.Amount": format_amount(amount, currency),
            "CaptureAmount.CurrencyCode": currency,
        }
        if note:
            params["SellerCaptureNote"] = note
        return self._capture(mws.child(await self._call(creds, "Capture", params), "CaptureDetails"), currency)

    async def get_capture_details(self, creds: Credentials, capture_id: str, currency: str) -> CaptureDetails:
        result = await self._call(creds, "GetCaptureDetails", {"AmazonCaptureId": capture_id})
        return self._capture(mws.child(result, "CaptureDetails"), currency)

    @staticmethod
    def _capture(details: Element, currency: str) -> CaptureDetails:
        state, reason = _status(details, "CaptureStatus")
        return CaptureDetails(
            capture_id=mws.text(details, "AmazonCaptureId") or "",
            reference_id=mws.text(details, "CaptureReferenceId") or "",
            amount_minor=_money(details, "CaptureAmount", currency),
            refunded_minor=_money(details, "RefundedAmount", currency),
            state=state,
            reason=reason,
            refund_ids=_ids(details, "IdList"),
        )

    # --- refunds --------------------------------------------------------------------------------------
    async def refund(
        self,
        creds: Credentials,
        capture_id: str,
        reference_id: str,
        amount: int,
        currency: str,
        note: str | None = None,
    ) -> RefundDetails:
        params = {
            "AmazonCaptureId": capture_id,
            "RefundReferenceId": reference_id,
            "RefundAmount.Amount": format_amount(amount, currency),
            "RefundAmount.CurrencyCode": currency,
        }
        if note:
            params["SellerRefundNote"] = note[:255]
        return self._refund(mws.child(await self._call(creds, "Refund", params), "RefundDetails"), currency)

    async def get_refund_details(self, creds: Credentials, refund_id: str, currency: str) -> RefundDetails:
        result = await self._call(creds, "GetRefundDetails", {"AmazonRefundId": refund_id})
        return self._refund(mws.child(result, "RefundDetails"), currency)

    @staticmethod
    def _refund(details: Element, currency: str) -> RefundDetails:
        state, reason = _status(details, "RefundStatus")
        return RefundDetails(
            refund_id=mws.text(details, "AmazonRefundId") or "",
            reference_id=mws.text(details, "RefundReferenceId") or "",
            amount_minor=_money(details, "RefundAmount", currency),
            state=state,
            reason=reason,
            refund_type=mws.text(details, "RefundType") or "SellerInitiated",
        )
