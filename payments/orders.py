"""Orders and invoices: the use cases that start an order's payment and ship it, and the order view.

Each use case is: validate (reading Amazon where the input names an Amazon object); record in one transaction
(with the bookings it causes); call Amazon Pay after commit (never inside a database transaction); record the
outcome in a second transaction (payments.charges). Amazon calls carry idempotency keys derived from the order,
so a retry of the same request, after a crash or a lost response, repeats the same Amazon call instead of a new
one; the retry of an order or invoice whose Amazon step did not finish resumes it.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import BadRequest, Conflict, FieldError, Unprocessable
from ledger.money import AmountError, format_amount, parse_amount
from payments.bookings import book, roles_of
from payments.charges import capture_invoice, check_session, complete_checkout, read_session, wind_down
from payments.domain import Item, gross_by_rate, invoice_lines
from payments.notify import emit, emit_balance
from payments.runtime import Payments
from payments.schemas import (
    ChargeOut,
    DocumentOut,
    InvoiceCreate,
    ItemOut,
    OrderCreate,
    OrderMoneyOut,
    OrderOut,
    RefundOut,
)
from payments.settings import load_settings
from payments.store import (
    OrderRow,
    insert_document,
    load_items,
    load_order,
    order_money,
    refresh_status,
    stored_document,
)

if TYPE_CHECKING:
    from ledger.db import Connection

CREDIT_KINDS = frozenset({"return", "goodwill"})

__all__ = [
    "CREDIT_KINDS",
    "create_invoice",
    "create_order",
    "document_response",
    "get_order",
    "rates_json",
    "replay_or_refuse",
]


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
    """Record the order and complete its Amazon Pay checkout session with the order total: one-step orders are
    captured now, two-step orders authorized (captured per invoice). A declined payment records the order as
    declined and answers 422 `payment_declined`."""
    settings = await load_settings(ctx, rt, business)
    items = _items(body, business)
    gross = sum(item.gross() for item in items)
    sid = body.payment_method.checkout_session_id
    async with ctx.pool.acquire() as conn:
        existing = await _existing(conn, business, body.order_reference, customer, request_sha256)
    if existing is not None and existing.status != "pending":
        return await get_order(ctx, business, customer, body.order_reference), False
    check_session(await read_session(rt, settings.credentials, sid), settings, gross, business.currency)
    async with ctx.pool.acquire() as conn, conn.transaction():
        await _insert_order(conn, business, customer, body, items, gross, settings.payment_execution, request_sha256)
        order = await load_order(conn, business, body.order_reference)
    await complete_checkout(ctx, rt, business, settings, order)
    out = await get_order(ctx, business, customer, body.order_reference)
    if out.status == "declined":
        raise Unprocessable(
            "payment_declined",
            f"Amazon Pay declined the payment ({out.status_reason}); the order {body.order_reference} is recorded "
            "as declined",
        )
    return out, True


async def _existing(
    conn: Connection, business: Business, order_ref: str, customer: str, request_sha256: bytes
) -> OrderRow | None:
    """The order reported before with the same body (a retry), or None; 409 for the same reference with other data."""
    row = await conn.fetchrow(
        "SELECT request_sha256, customer FROM orders WHERE merchant_id = $1 AND business = $2 AND order_ref = $3",
        business.merchant_id,
        business.code,
        order_ref,
    )
    if row is None:
        return None
    if bytes(row["request_sha256"]) != request_sha256 or row["customer"] != customer:
        raise Conflict("order_exists", f"order {order_ref} exists with other data")
    return await load_order(conn, business, order_ref)


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
    """Insert the order as pending (a concurrent identical request finds it and goes on with it)."""
    try:
        inserted = await conn.fetchval(
            "INSERT INTO orders (merchant_id, business, order_ref, customer, order_date, checkout_session_id, "
            "payment_execution, status, gross_minor, bill_to, request_sha256) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10) ON CONFLICT (merchant_id, business, order_ref) "
            "DO NOTHING RETURNING true",
            business.merchant_id,
            business.code,
            body.order_reference,
            customer,
            body.order_date,
            body.payment_method.checkout_session_id,
            execution,
            gross,
            msgspec.to_builtins(body.bill_to),
            request_sha256,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(
            "checkout_session_used",
            "this Amazon Pay checkout session belongs to another order",
            [FieldError("payment_method.checkout_session_id", "already used")],
        ) from None
    if not inserted:
        await _existing(conn, business, body.order_reference, customer, request_sha256)
        return
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


def _charge(row: Any, currency: str) -> ChargeOut:
    return ChargeOut(
        charge_id=row["charge_id"],
        amount=format_amount(row["amount_minor"], currency),
        captured=format_amount(row["captured_minor"], currency),
        state=row["state"],
        reason=row["reason"],
        expires_at=row["expires_at"],
        invoice_reference=row["invoice_ref"],
    )


async def get_order(ctx: Kontor, business: Business, customer: str, order_ref: str) -> OrderOut:
    async with ctx.pool.acquire() as conn:
        order = await load_order(conn, business, order_ref, customer=customer)
        items = await load_items(conn, business, order_ref)
        money = await order_money(conn, business, order, items)
        key = (business.merchant_id, business.code, order_ref)
        charges = await conn.fetch(
            "SELECT charge_id, amount_minor, captured_minor, state, reason, expires_at, invoice_ref FROM amazon_charges "
            "WHERE merchant_id = $1 AND business = $2 AND order_ref = $3 ORDER BY created_at, charge_id",
            *key,
        )
        refunds = await conn.fetch(
            "SELECT reference_id, refund_id, amount_minor, state, reason FROM amazon_refunds WHERE merchant_id = $1 "
            "AND business = $2 AND order_ref = $3 ORDER BY created_at, reference_id",
            *key,
        )
        permission = await conn.fetchrow(
            "SELECT charge_permission_state, charge_permission_reason FROM orders WHERE merchant_id = $1 "
            "AND business = $2 AND order_ref = $3",
            *key,
        )
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
        checkout_session_id=order.checkout_session_id,
        charge_permission_id=order.charge_permission_id,
        charge_permission_state=permission["charge_permission_state"] if permission else None,
        charge_permission_reason=permission["charge_permission_reason"] if permission else None,
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
        charges=[_charge(c, cur) for c in charges],
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
    """Book revenue and VAT for whole items of one shipment; two-step orders then capture the invoice's gross
    (payments.charges.capture_invoice). A retry whose capture did not reach Amazon captures now."""
    settings = await load_settings(ctx, rt, business)
    async with ctx.pool.acquire() as conn, conn.transaction():
        replay = replay_or_refuse(
            await stored_document(conn, business, "invoice", body.invoice_reference),
            request_sha256,
            f"invoice {body.invoice_reference}",
        )
        order = await load_order(conn, business, order_ref, customer=customer, lock=replay is None)
        if replay is None:
            _check_invoiceable(order)
            response, sequence = await _book_invoice(ctx, conn, business, order, body, request_sha256)
        elif order.one_step or replay["charges"]:
            return replay, False
        else:
            response, sequence = replay, await _sequence(conn, business, body.invoice_reference)
    if not order.one_step:
        charge = await capture_invoice(
            ctx,
            rt,
            business,
            settings,
            order,
            invoice_ref=body.invoice_reference,
            sequence=sequence,
            amount=parse_amount(str(response["gross_amount"]), business.currency),
            soft_descriptor=body.soft_descriptor,
        )
        response["charges"] = [msgspec.to_builtins(charge)]
        await ctx.pool.execute(
            "UPDATE order_documents SET response = $4 WHERE merchant_id = $1 AND business = $2 AND kind = 'invoice' "
            "AND ref = $3",
            business.merchant_id,
            business.code,
            body.invoice_reference,
            response,
        )
    await wind_down(ctx, rt, business, settings, order_ref)
    return response, replay is None


async def _book_invoice(
    ctx: Kontor, conn: Connection, business: Business, order: OrderRow, body: InvoiceCreate, request_sha256: bytes
) -> tuple[dict[str, Any], int]:
    """The invoice's entry, items, document and notifications, in the caller's transaction."""
    customer, order_ref = order.customer, order.order_ref
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
        reference=body.invoice_reference,
        metadata={"invoice": body.invoice_reference},
        order_reference=order_ref,
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
    await refresh_status(conn, business, order_ref)
    return response, sequence


def _check_invoiceable(order: OrderRow) -> None:
    why = {
        "pending": "its payment is not completed at Amazon Pay yet (report the order again to resume)",
        "authorization_pending": "Amazon Pay has not decided its authorization yet; invoice once it is authorized",
        "declined": "its payment was declined",
        "cancelled": "it was cancelled",
    }.get(order.status)
    if why is not None:
        raise Conflict("order_not_payable", f"order {order.order_ref} cannot be invoiced: {why}")


async def _sequence(conn: Connection, business: Business, invoice_ref: str) -> int:
    sequence = await conn.fetchval(
        "SELECT (details ->> 'sequence')::int FROM order_documents WHERE merchant_id = $1 AND business = $2 "
        "AND kind = 'invoice' AND ref = $3",
        business.merchant_id,
        business.code,
        invoice_ref,
    )
    return int(sequence)


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
