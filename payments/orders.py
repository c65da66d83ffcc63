"""Orders and invoices: the use cases that talk to Amazon Pay, and the order view.

Each use case is: validate; record in one transaction (with the bookings it causes); call Amazon Pay
after commit (never inside a database transaction); record the outcome in a second transaction. Amazon
calls use reference ids derived from the order (`<order>-a1`, `<order>-c2`), so a retry of the same
request, after a crash or a lost response, repeats the same Amazon call instead of a new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import msgspec

from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import BadRequest, Conflict, FieldError, KontorError, Unprocessable
from ledger.money import AmountError, format_amount, parse_amount
from payments.amazon.client import AmazonPayError, AmazonPayGateway, AuthorizationDetails, CaptureDetails
from payments.amazon.sns import SnsVerifier
from payments.bookings import book, record_capture, roles_of
from payments.config import PaymentsSettings
from payments.domain import Item, gross_by_rate, invoice_lines
from payments.notify import emit, emit_balance
from payments.schemas import (
    CaptureOut,
    DocumentOut,
    InvoiceCreate,
    ItemOut,
    OrderCreate,
    OrderMoneyOut,
    OrderOut,
    RefundOut,
)
from payments.settings import MerchantSettings, load_settings
from payments.store import OrderRow, insert_document, load_items, load_order, order_money, stored_document

if TYPE_CHECKING:
    from ledger.db import Connection

CREDIT_KINDS = frozenset({"return", "goodwill"})

__all__ = [
    "CREDIT_KINDS",
    "GatewayUnavailable",
    "capture_out",
    "create_invoice",
    "create_order",
    "get_order",
    "replay_or_refuse",
]


class GatewayUnavailable(KontorError):
    status = 502
    title = "Amazon Pay unavailable"


def gateway_unavailable(exc: AmazonPayError) -> GatewayUnavailable:
    return GatewayUnavailable(
        "gateway_unavailable",
        f"Amazon Pay could not be reached ({exc.code}); nothing was "
        "lost: retry the same request, Kontor resumes where it stopped",
    )


@dataclass
class Payments:
    """What the payments use cases need at run time besides the ledger context."""

    gateway: AmazonPayGateway
    sns: SnsVerifier
    settings: PaymentsSettings
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` after the response, keeping a reference until it is done."""
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def _items(body: OrderCreate, business: Business) -> list[Item]:
    errors: list[FieldError] = []
    items: list[Item] = []
    rates = set(business.vat_rates) | {Decimal(0)}
    for i, spec in enumerate(body.items):
        path = f"items[{i}]"
        negative = spec.gross_unit_price.startswith("-")
        try:
            unit = parse_amount(spec.gross_unit_price.lstrip("-"), business.currency, allow_zero=True)
        except AmountError as exc:
            errors.append(FieldError(f"{path}.gross_unit_price", str(exc)))
            continue
        if negative != (spec.position_type == "DISCOUNT") and unit:
            errors.append(FieldError(f"{path}.gross_unit_price", "only DISCOUNT positions have negative prices"))
        if Decimal(spec.vat_rate) not in rates:
            errors.append(
                FieldError(
                    f"{path}.vat_rate",
                    f"business code {business.code} books VAT at "
                    f"{', '.join(format(r.normalize(), 'f') for r in sorted(rates))} %",
                )
            )
        items.append(
            Item(
                spec.item_reference,
                spec.position_type,
                spec.description,
                spec.quantity,
                -unit if negative else unit,
                Decimal(spec.vat_rate),
            )
        )
    if len({i.item_ref for i in items}) != len(items):
        errors.append(FieldError("items", "item references must be unique within the order"))
    if errors:
        raise Unprocessable("order_invalid", "the order has invalid items", errors)
    gross_by_rate((item, item.quantity) for item in items)  # refuses discounts larger than their rate's items
    if sum(item.gross() for item in items) <= 0:
        raise Unprocessable("order_total_not_positive", "the order total must be greater than zero")
    return items


def replay_or_refuse(stored: Any, request_sha256: bytes, what: str) -> dict[str, Any] | None:
    """The stored response of an identical earlier request, or 409 for the same reference with another body."""
    if stored is None:
        return None
    if bytes(stored["request_sha256"]) != request_sha256:
        raise Conflict("reference_reused", f"{what} was already reported with other data; references are unique")
    response: dict[str, Any] = stored["response"]
    return response


async def create_order(
    ctx: Kontor, rt: Payments, business: Business, customer: str, body: OrderCreate, request_sha256: bytes
) -> tuple[OrderOut, bool]:
    """Record the order, then set up, confirm and authorize its Amazon order reference (one-step: capture)."""
    settings = await load_settings(ctx, business)
    items = _items(body, business)
    gross = sum(item.gross() for item in items)
    async with ctx.pool.acquire() as conn, conn.transaction():
        existing = await conn.fetchrow(
            "SELECT request_sha256, status, customer FROM orders WHERE merchant_id = $1 AND business = $2 "
            "AND order_ref = $3 FOR UPDATE",
            business.merchant_id,
            business.code,
            body.order_reference,
        )
        if existing is not None and (
            bytes(existing["request_sha256"]) != request_sha256 or existing["customer"] != customer
        ):
            raise Conflict("order_exists", f"order {body.order_reference} exists with other data")
        if existing is None:
            await _insert_order(
                conn, business, customer, body, items, gross, settings.payment_execution, request_sha256
            )
        elif existing["status"] != "pending":
            return await get_order(ctx, business, customer, body.order_reference), False
    async with ctx.pool.acquire() as conn:
        order = await load_order(conn, business, body.order_reference)
    await _authorize(ctx, rt, business, settings, order, body.payment_method.seller_note)
    out = await get_order(ctx, business, customer, body.order_reference)
    if out.status == "declined":
        raise Unprocessable(
            "payment_declined",
            f"Amazon Pay declined the payment ({out.status_reason}); the order "
            f"{body.order_reference} is recorded as declined",
        )
    return out, True


async def _insert_order(
    conn: Connection,
    business: Business,
    customer: str,
    body: OrderCreate,
    items: list[Item],
    gross: int,
    execution: str,
    request_sha256: bytes,
) -> None:
    try:
        await conn.execute(
            "INSERT INTO orders (merchant_id, business, order_ref, customer, order_date, amazon_order_reference_id, "
            "payment_execution, status, gross_minor, bill_to, request_sha256) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10)",
            business.merchant_id,
            business.code,
            body.order_reference,
            customer,
            body.order_date,
            body.payment_method.amazon_order_reference_id,
            execution,
            gross,
            msgspec.to_builtins(body.bill_to),
            request_sha256,
        )
    except Exception as exc:
        if "orders_by_amazon_reference" in str(exc):
            raise Conflict(
                "amazon_reference_used",
                "this Amazon order reference belongs to another order",
                [FieldError("payment_method.amazon_order_reference_id", "already used")],
            ) from None
        raise
    await conn.executemany(
        "INSERT INTO order_items (merchant_id, business, order_ref, item_ref, position_type, description, quantity, "
        "gross_unit_minor, vat_rate, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'open')",
        [
            (
                business.merchant_id,
                business.code,
                body.order_reference,
                i.item_ref,
                i.position_type,
                i.description,
                i.quantity,
                i.gross_unit_minor,
                i.vat_rate,
            )
            for i in items
        ],
    )


async def _authorize(
    ctx: Kontor, rt: Payments, business: Business, settings: MerchantSettings, order: OrderRow, note: str | None
) -> None:
    creds, orid, currency = settings.credentials, order.amazon_order_reference_id, business.currency
    try:
        try:
            await rt.gateway.set_order_reference_details(creds, orid, order.gross_minor, currency, order.order_ref)
            await rt.gateway.confirm_order_reference(creds, orid)
        except AmazonPayError as exc:  # a retry finds the reference already confirmed
            if (
                exc.code != "InvalidOrderReferenceStatus"
                or (await rt.gateway.get_order_reference_details(creds, orid, currency)).state != "Open"
            ):
                raise
        auth = await rt.gateway.authorize(
            creds, orid, f"{order.order_ref}-a1", order.gross_minor, currency, capture_now=order.one_step, note=note
        )
        captures = [await rt.gateway.get_capture_details(creds, c, currency) for c in auth.capture_ids]
    except AmazonPayError as exc:
        if not exc.reachable:
            raise gateway_unavailable(exc) from exc
        await _set_status(ctx, business, order.order_ref, "declined", exc.code)
        return
    async with ctx.pool.acquire() as conn, conn.transaction():
        await record_authorization(conn, business, order.order_ref, auth)
        for capture in captures:
            await record_capture(
                ctx, conn, business, order, capture, authorization_id=auth.authorization_id, on=order.order_date
            )
        declined = auth.state == "Declined"
        await conn.execute(
            "UPDATE orders SET status = $4, status_reason = $5 WHERE merchant_id = $1 AND business = $2 "
            "AND order_ref = $3",
            business.merchant_id,
            business.code,
            order.order_ref,
            "declined" if declined else "authorized",
            auth.reason if declined else None,
        )


async def _set_status(ctx: Kontor, business: Business, order_ref: str, status: str, reason: str | None) -> None:
    await ctx.pool.execute(
        "UPDATE orders SET status = $4, status_reason = $5 WHERE merchant_id = $1 AND business = $2 AND order_ref = $3",
        business.merchant_id,
        business.code,
        order_ref,
        status,
        reason,
    )


async def record_authorization(
    conn: Connection, business: Business, order_ref: str, auth: AuthorizationDetails
) -> None:
    await conn.execute(
        "INSERT INTO amazon_authorizations (merchant_id, business, order_ref, authorization_id, reference_id, "
        "amount_minor, state, reason, expires_at, capture_now) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
        "ON CONFLICT (merchant_id, authorization_id) DO UPDATE SET state = excluded.state, reason = excluded.reason",
        business.merchant_id,
        business.code,
        order_ref,
        auth.authorization_id,
        auth.reference_id,
        auth.amount_minor,
        auth.state,
        auth.reason,
        auth.expires_at,
        bool(auth.capture_ids) and auth.captured_minor == auth.amount_minor,
    )


def capture_out(capture: CaptureDetails | Any, currency: str) -> CaptureOut:
    if isinstance(capture, CaptureDetails):
        return CaptureOut(
            capture_id=capture.capture_id,
            amount=format_amount(capture.amount_minor, currency),
            state=capture.state,
            reason=capture.reason,
        )
    return CaptureOut(
        capture_id=capture["capture_id"],
        amount=format_amount(capture["amount_minor"], currency),
        state=capture["state"],
        reason=capture["reason"],
    )


async def get_order(ctx: Kontor, business: Business, customer: str, order_ref: str) -> OrderOut:
    async with ctx.pool.acquire() as conn:
        order = await load_order(conn, business, order_ref, customer=customer)
        items = await load_items(conn, business, order_ref)
        money = await order_money(conn, business, order, items)
        captures = await conn.fetch(
            "SELECT capture_id, amount_minor, state, reason FROM amazon_captures WHERE merchant_id = $1 "
            "AND business = $2 AND order_ref = $3 ORDER BY created_at, capture_id",
            business.merchant_id,
            business.code,
            order_ref,
        )
        refunds = await conn.fetch(
            "SELECT reference_id, refund_id, amount_minor, state, reason FROM amazon_refunds WHERE merchant_id = $1 "
            "AND business = $2 AND order_ref = $3 ORDER BY created_at, reference_id",
            business.merchant_id,
            business.code,
            order_ref,
        )
        amazon = await conn.fetchrow(
            "SELECT amazon_state, amazon_state_reason FROM orders WHERE merchant_id = $1 AND business = $2 "
            "AND order_ref = $3",
            business.merchant_id,
            business.code,
            order_ref,
        )
    assert amazon is not None
    cur = business.currency
    return OrderOut(
        order_reference=order.order_ref,
        customer=order.customer,
        order_date=order.order_date,
        currency=cur,
        gross_amount=format_amount(order.gross_minor, cur),
        payment_execution=order.payment_execution,
        status=order.status,
        status_reason=order.status_reason,
        amazon_order_reference_id=order.amazon_order_reference_id,
        amazon_state=amazon["amazon_state"],
        amazon_state_reason=amazon["amazon_state_reason"],
        items=[
            ItemOut(
                item_reference=r.item.item_ref,
                position_type=r.item.position_type,
                description=r.item.description,
                quantity=r.item.quantity,
                gross_unit_price=format_amount(r.item.gross_unit_minor, cur),
                vat_rate=format(r.item.vat_rate.normalize(), "f"),
                state=r.state,
                invoice_reference=r.invoice_ref,
                returned_quantity=r.returned_qty,
            )
            for r in items.values()
        ],
        captures=[capture_out(c, cur) for c in captures],
        refunds=[
            RefundOut(
                reference=r["reference_id"],
                refund_id=r["refund_id"],
                amount=format_amount(r["amount_minor"], cur),
                state=r["state"],
                reason=r["reason"],
            )
            for r in refunds
        ],
        money=OrderMoneyOut(
            invoiced=format_amount(money.invoiced, cur),
            credited=format_amount(money.credited, cur),
            paid=format_amount(money.paid, cur),
            refunded=format_amount(money.refunded, cur),
            open=format_amount(money.invoiced - money.credited - money.paid + money.refunded, cur),
        ),
    )


# --- invoices -----------------------------------------------------------------------------------------
async def create_invoice(
    ctx: Kontor,
    rt: Payments,
    business: Business,
    customer: str,
    order_ref: str,
    body: InvoiceCreate,
    request_sha256: bytes,
) -> tuple[dict[str, Any], bool]:
    """Book revenue and VAT for whole items of one shipment; two-step orders then capture the invoice."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        replay = replay_or_refuse(
            await stored_document(conn, business, "invoice", body.invoice_reference),
            request_sha256,
            f"invoice {body.invoice_reference}",
        )
        if replay is not None:
            return replay, False
        order = await load_order(conn, business, order_ref, customer=customer, lock=True)
        if order.status != "authorized":
            raise Conflict(
                "order_not_payable", f"order {order_ref} is {order.status}; only authorized orders are invoiced"
            )
        items = await load_items(conn, business, order_ref)
        chosen = _whole_items(items, [i.item_reference for i in body.items])
        by_rate = gross_by_rate((item, item.quantity) for item in chosen)
        gross = sum(by_rate.values())
        roles = await roles_of(ctx, business)
        entry_id = await book(
            ctx,
            conn,
            business,
            invoice_lines(roles, customer, by_rate, business.currency),
            on=body.invoice_date,
            description=f"Invoice {body.invoice_reference}, order {order_ref}",
            reference=order_ref,
            metadata={"invoice": body.invoice_reference},
        )
        await conn.execute(
            "UPDATE order_items SET state = 'invoiced', invoice_ref = $4 WHERE merchant_id = $1 AND business = $2 "
            "AND order_ref = $3 AND item_ref = ANY($5::int[])",
            business.merchant_id,
            business.code,
            order_ref,
            body.invoice_reference,
            [i.item_ref for i in chosen],
        )
        sequence = 1 + await conn.fetchval(
            "SELECT count(*) FROM order_documents WHERE merchant_id = $1 AND business = $2 AND order_ref = $3 "
            "AND kind = 'invoice'",
            business.merchant_id,
            business.code,
            order_ref,
        )
        response = document_response(
            business, "invoice", body.invoice_reference, order_ref, body.invoice_date, gross, entry_id
        )
        await insert_document(
            conn,
            business,
            order_ref=order_ref,
            kind="invoice",
            ref=body.invoice_reference,
            document_date=body.invoice_date,
            gross=gross,
            entry_id=entry_id,
            details={
                "by_rate": rates_json(by_rate),
                "sequence": sequence,
                "items": [i.item_ref for i in chosen],
                "due_date": iso_or_none(body.due_date),
                "carrier": body.carrier,
                "tracking_code": body.tracking_code,
            },
            response=response,
            request_sha256=request_sha256,
        )
        await emit(
            conn,
            business,
            "invoice.created",
            {
                "customer": customer,
                "order_reference": order_ref,
                "invoice_reference": body.invoice_reference,
                "gross_amount": format_amount(gross, business.currency),
                "currency": business.currency,
                "due_date": iso_or_none(body.due_date),
                "entry_id": entry_id,
            },
        )
        await emit_balance(ctx, conn, business, customer, "invoice.created", on=body.invoice_date)
    if not order.one_step:
        capture = await _capture_invoice(ctx, rt, business, order, gross, sequence, body.capture_note)
        response["captures"] = [msgspec.to_builtins(capture)]
        await ctx.pool.execute(
            "UPDATE order_documents SET response = $4 WHERE merchant_id = $1 AND business = $2 AND kind = 'invoice' "
            "AND ref = $3",
            business.merchant_id,
            business.code,
            body.invoice_reference,
            response,
        )
    return response, True


def _whole_items(items: dict[int, Any], refs: list[int]) -> list[Item]:
    if len(set(refs)) != len(refs):
        raise BadRequest("item_repeated", "an item is named twice; items are invoiced whole")
    chosen = []
    for i, ref in enumerate(refs):
        row = items.get(ref)
        if row is None:
            raise Unprocessable(
                "item_unknown",
                f"order has no item {ref}",
                [FieldError(f"items[{i}].item_reference", "not an item of this order")],
            )
        if row.state != "open":
            where = f" (invoice {row.invoice_ref})" if row.invoice_ref else ""
            raise Conflict(
                "item_not_open",
                f"item {ref} is already {row.state}{where}",
                [FieldError(f"items[{i}].item_reference", f"item is {row.state}")],
            )
        chosen.append(row.item)
    return chosen


async def _capture_invoice(
    ctx: Kontor, rt: Payments, business: Business, order: OrderRow, amount: int, sequence: int, note: str | None
) -> CaptureOut:
    """Two-step: capture the invoiced amount from an open authorization, or re-authorize and capture now."""
    creds = (await load_settings(ctx, business)).credentials
    currency, now = business.currency, ctx.clock()
    auth_row = await ctx.pool.fetchrow(
        "SELECT authorization_id FROM amazon_authorizations a WHERE merchant_id = $1 AND business = $2 "
        "AND order_ref = $3 AND state = 'Open' AND amount_minor >= $4 AND (expires_at IS NULL OR expires_at > $5) "
        "AND NOT EXISTS (SELECT 1 FROM amazon_captures c WHERE c.merchant_id = a.merchant_id "
        "AND c.authorization_id = a.authorization_id) ORDER BY created_at LIMIT 1",
        business.merchant_id,
        business.code,
        order.order_ref,
        amount,
        now,
    )
    try:
        capture, auth = None, None
        if auth_row is not None:
            try:
                capture = await rt.gateway.capture(
                    creds, auth_row["authorization_id"], f"{order.order_ref}-c{sequence}", amount, currency, note=note
                )
            except AmazonPayError as exc:
                if exc.code != "InvalidAuthorizationStatus":  # expired at Amazon: re-authorize below
                    raise
        if capture is None:
            auth = await rt.gateway.authorize(
                creds,
                order.amazon_order_reference_id,
                f"{order.order_ref}-a{sequence + 1}",
                amount,
                currency,
                capture_now=True,
                note=note,
            )
            if not auth.capture_ids:
                return CaptureOut(
                    capture_id="", amount=format_amount(amount, currency), state="Declined", reason=auth.reason
                )
            capture = await rt.gateway.get_capture_details(creds, auth.capture_ids[0], currency)
    except AmazonPayError as exc:
        if not exc.reachable:
            raise gateway_unavailable(exc) from exc
        return CaptureOut(capture_id="", amount=format_amount(amount, currency), state="Declined", reason=exc.code)
    async with ctx.pool.acquire() as conn, conn.transaction():
        if auth is not None:
            await record_authorization(conn, business, order.order_ref, auth)
        await record_capture(
            ctx,
            conn,
            business,
            order,
            capture,
            authorization_id=auth.authorization_id if auth else (auth_row["authorization_id"] if auth_row else None),
            on=ctx.today(),
        )
        if auth_row is not None and auth is None:
            await conn.execute(
                "UPDATE amazon_authorizations SET state = 'Closed', reason = 'MaxCapturesProcessed' "
                "WHERE merchant_id = $1 AND authorization_id = $2",
                business.merchant_id,
                auth_row["authorization_id"],
            )
    return capture_out(capture, currency)


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
        captures=[],
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
