"""The Amazon Pay API v2 (Checkout v2) client: the operations Kontor performs for a merchant.

Why: Amazon ended Checkout v1 / MWS on 31 March 2026; Kontor now talks to `pay-api.amazon.{com|eu|jp}` with
RSASSA-PSS signed JSON calls (`transport.py`). Each method maps to one documented operation
(developer.amazon.com/docs/amazon-pay-api-v2/*, amazon-pay-reports/*, amazon-pay-checkout/delegated-authorization)
and answers a frozen value object (`objects.py`); amounts are integer minor units (`Amount`).

Errors: `AmazonPayError(status, reason_code, message)`; `reachable` is False when Amazon could not be reached or
kept failing with 5xx/429 after the retries. Arguments Kontor gets wrong before anything is sent (an idempotency
key that is not 1-32 `[A-Za-z0-9_-]`, a soft descriptor over 16 characters) raise ValueError.

Choices where Amazon is silent or loose (written down here, and in the simulator that plays Amazon):
- Texts Amazon limits are trimmed, not refused: closureReason and cancellationReason to 255 characters.
- Upload File is Amazon's two steps: `POST /files {type, purpose: disputeEvidence}` answers a File object with
  `id` and an upload `url`; the bytes are then PUT to that URL, unsigned (a pre-signed URL).
- Lists follow `nextToken` for at most `PAGES_MAX` pages; Get Reports sends the token alone (documented), Get
  Disbursements sends it with the same startTime/endTime/pageSize (the docs list it among the parameters).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from urllib.parse import quote

import httpx

from ledger.money import format_amount
from payments.amazon import responses
from payments.amazon.objects import (
    AmazonPayError,
    Amount,
    Charge,
    ChargePermission,
    CheckoutSession,
    Credentials,
    Disbursement,
    Dispute,
    Evidence,
    Fields,
    Refund,
    Region,
    Report,
    format_timestamp,
)
from payments.amazon.transport import Transport, check_idempotency_key, install_log_redaction, read_bounded

__all__ = [
    "PAGES_MAX",
    "AmazonPayClient",
    "AmazonPayError",
    "Amount",
    "Charge",
    "ChargePermission",
    "CheckoutSession",
    "Credentials",
    "Disbursement",
    "Dispute",
    "Evidence",
    "Refund",
    "Region",
    "Report",
    "check_idempotency_key",
]

PAGES_MAX = 50
PAGE_SIZE = 100
SOFT_DESCRIPTOR_CHARS_MAX = 16
REASON_CHARS_MAX = 255
UPLOAD_BYTES_MAX = 10 << 20


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _price(amount: Amount) -> dict[str, object]:
    return {"amount": format_amount(amount.minor, amount.currency), "currencyCode": amount.currency}


def _segment(value: str) -> str:
    """An id as one path segment (ids never contain '/', but a caller's typo must not change the route)."""
    return quote(value, safe="-._~")


def _descriptor(body: dict[str, object], soft_descriptor: str | None) -> None:
    if soft_descriptor is None:
        return
    if not 1 <= len(soft_descriptor) <= SOFT_DESCRIPTOR_CHARS_MAX:
        raise ValueError(f"softDescriptor must be 1-{SOFT_DESCRIPTOR_CHARS_MAX} characters")
    body["softDescriptor"] = soft_descriptor


class AmazonPayClient:
    """One per process, over the caller's httpx client; `endpoint` (the simulator, a proxy) replaces scheme+host."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        endpoint: str | None = None,
        attempts_max: int = 4,
        backoff_s: float = 0.2,
        timeout_s: float = 10.0,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._http, self._timeout_s = http, timeout_s
        install_log_redaction()
        self._wire = Transport(
            http, endpoint=endpoint, attempts_max=attempts_max, backoff_s=backoff_s, timeout_s=timeout_s, clock=clock
        )

    # --- checkout sessions (amazon-pay-api-v2/checkout-session.html) ----------------------------------------
    async def get_checkout_session(self, creds: Credentials, checkout_session_id: str) -> CheckoutSession:
        answer = await self._wire.call(creds, "GET", f"/checkoutSessions/{_segment(checkout_session_id)}")
        return responses.checkout_session(answer.body, answer.status)

    async def complete_checkout_session(
        self, creds: Credentials, checkout_session_id: str, amount: Amount, *, idempotency_key: str
    ) -> CheckoutSession:
        """Confirms the buyer's payment; Amazon answers an error (e.g. 422 CheckoutSessionCanceled) when it fails."""
        answer = await self._wire.call(
            creds,
            "POST",
            f"/checkoutSessions/{_segment(checkout_session_id)}/complete",
            body={"chargeAmount": _price(amount)},
            idempotency_key=idempotency_key,
        )
        return responses.checkout_session(answer.body, answer.status)

    # --- charge permissions (amazon-pay-api-v2/charge-permission.html) --------------------------------------
    async def get_charge_permission(self, creds: Credentials, charge_permission_id: str) -> ChargePermission:
        answer = await self._wire.call(creds, "GET", f"/chargePermissions/{_segment(charge_permission_id)}")
        return responses.charge_permission(answer.body, answer.status)

    async def close_charge_permission(
        self, creds: Credentials, charge_permission_id: str, reason: str, *, cancel_pending_charges: bool = False
    ) -> ChargePermission:
        answer = await self._wire.call(
            creds,
            "DELETE",
            f"/chargePermissions/{_segment(charge_permission_id)}/close",
            body={"closureReason": reason[:REASON_CHARS_MAX], "cancelPendingCharges": cancel_pending_charges},
        )
        return responses.charge_permission(answer.body, answer.status)

    # --- charges (amazon-pay-api-v2/charge.html) ------------------------------------------------------------
    async def create_charge(
        self,
        creds: Credentials,
        charge_permission_id: str,
        amount: Amount,
        *,
        capture_now: bool,
        can_handle_pending_authorization: bool,
        idempotency_key: str,
        soft_descriptor: str | None = None,
        merchant_reference_id: str | None = None,
    ) -> Charge:
        body: dict[str, object] = {
            "chargePermissionId": charge_permission_id,
            "chargeAmount": _price(amount),
            "captureNow": capture_now,
            "canHandlePendingAuthorization": can_handle_pending_authorization,
        }
        _descriptor(body, soft_descriptor)
        if merchant_reference_id is not None:
            body["merchantMetadata"] = {"merchantReferenceId": merchant_reference_id}
        answer = await self._wire.call(creds, "POST", "/charges", body=body, idempotency_key=idempotency_key)
        return responses.charge(answer.body, answer.status)

    async def get_charge(self, creds: Credentials, charge_id: str) -> Charge:
        answer = await self._wire.call(creds, "GET", f"/charges/{_segment(charge_id)}")
        return responses.charge(answer.body, answer.status)

    async def capture_charge(
        self,
        creds: Credentials,
        charge_id: str,
        amount: Amount,
        *,
        idempotency_key: str,
        soft_descriptor: str | None = None,
    ) -> Charge:
        body: dict[str, object] = {"captureAmount": _price(amount)}
        _descriptor(body, soft_descriptor)
        answer = await self._wire.call(
            creds, "POST", f"/charges/{_segment(charge_id)}/capture", body=body, idempotency_key=idempotency_key
        )
        return responses.charge(answer.body, answer.status)

    async def cancel_charge(self, creds: Credentials, charge_id: str, reason: str) -> Charge:
        answer = await self._wire.call(
            creds,
            "DELETE",
            f"/charges/{_segment(charge_id)}/cancel",
            body={"cancellationReason": reason[:REASON_CHARS_MAX]},
        )
        return responses.charge(answer.body, answer.status)

    # --- refunds (amazon-pay-api-v2/refund.html) -------------------------------------------------------------
    async def create_refund(
        self,
        creds: Credentials,
        charge_id: str,
        amount: Amount,
        *,
        idempotency_key: str,
        soft_descriptor: str | None = None,
    ) -> Refund:
        body: dict[str, object] = {"chargeId": charge_id, "refundAmount": _price(amount)}
        _descriptor(body, soft_descriptor)
        answer = await self._wire.call(creds, "POST", "/refunds", body=body, idempotency_key=idempotency_key)
        return responses.refund(answer.body, answer.status)

    async def get_refund(self, creds: Credentials, refund_id: str) -> Refund:
        answer = await self._wire.call(creds, "GET", f"/refunds/{_segment(refund_id)}")
        return responses.refund(answer.body, answer.status)

    # --- disputes and evidence files (amazon-pay-api-v2/dispute.html, file.html) ------------------------------
    async def get_dispute(self, creds: Credentials, dispute_id: str) -> Dispute:
        answer = await self._wire.call(creds, "GET", f"/disputes/{_segment(dispute_id)}")
        return responses.dispute(answer.body, answer.status)

    async def upload_file(self, creds: Credentials, content: bytes, *, file_type: str, idempotency_key: str) -> str:
        """Evidence for a contest (`file_type` jpg, png, pdf, ...): asks for an upload URL, PUTs the bytes; -> fileId."""
        if len(content) > UPLOAD_BYTES_MAX:
            raise ValueError(f"evidence files are limited to {UPLOAD_BYTES_MAX} bytes here")
        answer = await self._wire.call(
            creds,
            "POST",
            "/files",
            body={"type": file_type, "purpose": "disputeEvidence"},
            idempotency_key=idempotency_key,
        )
        file_id, url = responses.file_upload(answer.body, answer.status)
        try:
            response = await self._http.put(url, content=content, timeout=self._timeout_s)
        except httpx.TransportError as exc:
            raise AmazonPayError(0, "Unreachable", f"upload: {type(exc).__name__}: {exc}", reachable=False) from exc
        if not 200 <= response.status_code < 300:
            raise AmazonPayError(response.status_code, "UploadFailed", "the upload URL refused the file")
        return file_id

    async def contest_dispute(
        self, creds: Credentials, dispute_id: str, evidences: Sequence[Evidence], *, idempotency_key: str
    ) -> Dispute:
        items: list[dict[str, object]] = []
        for evidence in evidences:
            item: dict[str, object] = {"evidenceType": evidence.evidence_type}
            if evidence.file_id is not None:
                item["fileId"] = evidence.file_id
            if evidence.text is not None:
                item["evidenceText"] = evidence.text
            items.append(item)
        answer = await self._wire.call(
            creds,
            "POST",
            f"/disputes/{_segment(dispute_id)}/contest",
            body={"merchantEvidences": items},
            idempotency_key=idempotency_key,
        )
        return responses.dispute(answer.body, answer.status)

    # --- reporting (amazon-pay-api-v2/reports.html, amazon-pay-reports/*) -----------------------------------
    async def list_reports(
        self,
        creds: Credentials,
        *,
        report_types: Sequence[str],
        created_since: datetime | None = None,
        created_until: datetime | None = None,
    ) -> list[Report]:
        """Every report of `report_types` created in the window (Amazon keeps 90 days), following nextToken."""
        query = [("reportTypes", ",".join(report_types)), ("pageSize", str(PAGE_SIZE))]
        if created_since is not None:
            query.append(("createdSince", format_timestamp(created_since)))
        if created_until is not None:
            query.append(("createdUntil", format_timestamp(created_until)))
        found: list[Report] = []
        for _ in range(PAGES_MAX):
            answer = await self._wire.call(creds, "GET", "/reports", query=query)
            page, token = responses.reports_page(answer.body, answer.status)
            found.extend(page)
            if token is None:
                return found
            query = [("nextToken", token)]  # Amazon: nextToken is sent alone
        raise AmazonPayError(200, "TooManyPages", f"more than {PAGES_MAX} pages of reports")

    async def get_report(self, creds: Credentials, report_id: str) -> Report:
        answer = await self._wire.call(creds, "GET", f"/reports/{_segment(report_id)}")
        return responses.report(answer.body, answer.status)

    async def get_report_document_url(self, creds: Credentials, report_document_id: str) -> str:
        """The pre-signed download URL (valid about 30 s: download at once)."""
        answer = await self._wire.call(creds, "GET", f"/report-documents/{_segment(report_document_id)}")
        return Fields(answer.body, answer.status, "reportDocument").text("url")

    async def download_report(self, url: str, *, bytes_max: int) -> bytes:
        """GET a pre-signed document URL (unsigned), streamed and refused (`ResponseTooLarge`) above `bytes_max`."""
        try:
            async with self._http.stream("GET", url, timeout=self._timeout_s) as response:
                if response.status_code != 200:
                    raise AmazonPayError(response.status_code, "DownloadRefused", "the document URL refused the GET")
                return await read_bounded(response, bytes_max)
        except httpx.TransportError as exc:
            raise AmazonPayError(0, "Unreachable", f"download: {type(exc).__name__}: {exc}", reachable=False) from exc

    async def list_disbursements(self, creds: Credentials, *, start: datetime, end: datetime) -> list[Disbursement]:
        """Payouts whose settlement date is in [start, end], following nextToken."""
        base = [
            ("startTime", format_timestamp(start)),
            ("endTime", format_timestamp(end)),
            ("pageSize", str(PAGE_SIZE)),
        ]
        query, found = base, []
        for _ in range(PAGES_MAX):
            answer = await self._wire.call(creds, "GET", "/disbursements", query=query)
            page, token = responses.disbursements_page(answer.body, answer.status)
            found.extend(page)
            if token is None:
                return found
            query = [*base, ("nextToken", token)]
        raise AmazonPayError(200, "TooManyPages", f"more than {PAGES_MAX} pages of disbursements")

    # --- delegated access (amazon-pay-checkout/delegated-authorization.html) --------------------------------
    async def exchange_auth_token(self, provider: Credentials, merchant_id: str, mws_auth_token: str) -> str:
        """A merchant's MWS auth token (granted to the provider) -> the v2 token for `x-amz-pay-authtoken`."""
        answer = await self._wire.call(
            provider, "GET", f"/authorizationTokens/{_segment(mws_auth_token)}", query=[("merchantId", merchant_id)]
        )
        return Fields(answer.body, answer.status, "authorizationToken").text("authorizationToken")
