"""Amazon Pay's refusals as Kontor's problems: one mapping from Amazon's `reasonCode` to a status and a code.

Amazon answers `{"reasonCode", "message"}` (developer.amazon.com/docs/amazon-pay-api-v2/error-handling.html). A
refusal that follows from the order's state at Amazon is a 409 (`amazon_pay_invalid_charge_status`, ...), one
that follows from the money or the buyer's payment method a 422 (`amazon_pay_soft_declined`,
`amazon_pay_transaction_amount_exceeded`, ...), a refusal of Kontor's credentials a 409
`amazon_pay_access_refused` (the merchant must connect again), and Amazon out of reach a 502 with Retry-After.
The problem's detail names Amazon's reasonCode and message.
"""

from __future__ import annotations

import re

from ledger.errors import Conflict, KontorError, NotFound, Unprocessable
from payments.amazon.client import AmazonPayError

__all__ = ["ACCESS_REFUSALS", "GatewayUnavailable", "amazon_refused", "gateway_unavailable"]

_CONFLICTS = frozenset(
    {
        "InvalidChargePermissionStatus",
        "InvalidChargeStatus",
        "InvalidCheckoutSessionStatus",
        "AmountMismatch",
        "ChargePermissionNotModifiable",
        "CheckoutSessionCanceled",
        "DuplicateIdempotencyKey",
        "InvalidDisputeStatus",
    }
)
ACCESS_REFUSALS = _ACCESS = frozenset(
    {"UnauthorizedAccess", "InvalidRequestSignature", "InvalidAuthorizationToken", "InvalidAuthentication",
     "InvalidAccountStatus"}
)  # fmt: skip


class GatewayUnavailable(KontorError):
    status = 502
    title = "Amazon Pay unavailable"


def gateway_unavailable(exc: AmazonPayError) -> GatewayUnavailable:
    return GatewayUnavailable(
        "gateway_unavailable",
        f"Amazon Pay could not be reached ({exc.reason_code}); nothing was lost: retry the same request, "
        "Kontor resumes where it stopped",
        headers={"Retry-After": "30"},
    )


def _snake(reason_code: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", reason_code).lower()


def amazon_refused(exc: AmazonPayError, what: str) -> KontorError:
    """The problem for Amazon refusing `what` (e.g. "the capture of charge S02-...-C01")."""
    if not exc.reachable:
        return gateway_unavailable(exc)
    detail = f"Amazon Pay refused {what}: {exc.reason_code} ({exc.message})"
    if exc.reason_code in _ACCESS:
        return Conflict(
            "amazon_pay_access_refused",
            detail + "; the business code's Amazon Pay credentials no longer work: PUT .../amazon-pay/settings again",
        )
    code = f"amazon_pay_{_snake(exc.reason_code)}"
    if exc.reason_code == "ResourceNotFound":
        return NotFound(code, detail)
    if exc.reason_code in _CONFLICTS:
        return Conflict(code, detail)
    return Unprocessable(code, detail)
