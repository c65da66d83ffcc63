"""What the document routes answer: the stored reply of a repeated request (`stored_reply`, the one function here
that reads the database; `replay_or_refuse` decides), a document's reply (`document_response`), the date order
of documents (`not_before`), rate and date fields.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import msgspec

from ledger.domain import Business
from ledger.errors import Conflict, FieldError, Unprocessable
from ledger.money import format_amount
from payments.schemas import (
    DocumentOut,
    RefundOut,
)
from payments.store import stored_document

if TYPE_CHECKING:
    pass

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = [
    "CREDIT_KINDS",
    "document_response",
    "iso_or_none",
    "not_before",
    "rates_json",
    "replay_or_refuse",
    "stored_reply",
]

CREDIT_KINDS = frozenset({"return", "goodwill"})


def replay_or_refuse(stored: Any, request_sha256: bytes, what: str) -> dict[str, Any] | None:
    """The stored response of an identical earlier request, or 409 for the same reference with another body."""
    if stored is None:
        return None
    if bytes(stored["request_sha256"]) != request_sha256:
        raise Conflict("reference_reused", f"{what} was already reported with other data; references are unique")
    response: dict[str, Any] = stored["response"]
    return response


async def stored_reply(
    conn: Connection, business: Business, kind: str, ref: str, request_sha256: bytes
) -> dict[str, Any] | None:
    """The stored reply to the same request for document `kind` `ref`, None for a new one; 409 `reference_reused`
    for the same reference with another body."""
    return replay_or_refuse(await stored_document(conn, business, kind, ref), request_sha256, f"{kind} {ref}")


def not_before(value: date, earliest: date, field: str, what: str) -> None:
    """422 `date_before_document` naming `field` when a document is dated before the one it follows."""
    if value < earliest:
        raise Unprocessable(
            "date_before_document",
            f"{field} {value.isoformat()} is before {what} ({earliest.isoformat()})",
            [FieldError(field, f"must not be before {earliest.isoformat()}")],
        )


def document_response(
    business: Business,
    kind: str,
    ref: str,
    order_ref: str,
    on: date,
    gross: int,
    entry_id: int | None,
    *,
    refunds: list[dict[str, Any]] | None = None,
    refunded: int = 0,
) -> dict[str, Any]:
    cur = business.currency
    out = DocumentOut(
        kind=kind,
        reference=ref,
        order_reference=order_ref,
        document_date=on,
        gross_amount=format_amount(gross, cur),
        entry_id=entry_id,
        refunded=format_amount(refunded, cur),
        offset=format_amount(gross - refunded if kind in CREDIT_KINDS else 0, cur),
        charges=[],
        refunds=[
            RefundOut(
                reference=r["reference"],
                refund_id=r["refund_id"],
                amount=format_amount(r["amount_minor"], cur),
                state=r["state"],
                reason=r["reason"],
            )
            for r in (refunds or [])
        ],
    )
    result: dict[str, Any] = msgspec.to_builtins(out)
    return result


def rates_json(by_rate: dict[Decimal, int]) -> dict[str, int]:
    return {format(rate.normalize(), "f"): gross for rate, gross in by_rate.items()}


def iso_or_none(value: date | None) -> str | None:
    return None if value is None else value.isoformat()
