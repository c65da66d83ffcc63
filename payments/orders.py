"""Orders: the use case that starts an order's payment, and the order view; invoices are `payments.invoices`'s.

Each use case is: validate everything (reading Amazon where the input names an Amazon object; dates in range and,
where Amazon's step books on them, in an open month); record in one transaction; call Amazon Pay after commit
(never inside a database transaction); record the outcome in a second transaction (payments.charges). Amazon calls
carry idempotency keys derived from the order and recorded before the call, so a retry of the same request, after
a crash or a lost response, repeats the same Amazon call instead of a new one; the retry of an order or invoice
whose Amazon step did not finish resumes it. A two-step invoice is booked only once Amazon accepted its capture
(payments.captures); Amazon refusing it is a problem and books nothing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import msgspec

from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import Conflict, FieldError, Unprocessable
from ledger.money import AmountError, format_amount, parse_amount
from ledger.tenancy import is_country
from payments.charges import check_session, complete_checkout, read_session
from payments.domain import Item, gross_by_rate
from payments.runtime import Payments
from payments.schemas import (
    ChargeOut,
    ItemOut,
    OrderCreate,
    OrderMoneyOut,
    OrderOut,
    RefundOut,
)
from payments.settings import load_settings
from payments.store import (
    OrderRow,
    check_period_open,
    load_items,
    load_order,
    order_money,
)

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["create_order", "get_order"]


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


async def create_order(
    ctx: Kontor, rt: Payments, business: Business, customer: str, body: OrderCreate, request_sha256: bytes
) -> tuple[OrderOut, bool]:
    """Record the order and complete its Amazon Pay checkout session with the order total: one-step orders are
    captured now, two-step orders authorized (captured per invoice). A declined payment records the order as
    declined and answers 422 `payment_declined`."""
    settings = await load_settings(ctx, rt, business)
    items = _items(body, business)
    country = body.bill_to.country_code
    if country is not None and not is_country(country):  # letters and VAT need a real country
        raise Unprocessable(
            "country_unknown",
            f"{country} is not an ISO 3166-1 alpha-2 country code",
            [FieldError("bill_to.country_code", "unknown ISO 3166-1 alpha-2 country code")],
        )
    gross = sum(item.gross() for item in items)
    sid = body.payment_method.checkout_session_id
    async with ctx.pool.acquire() as conn:
        existing = await _existing(conn, business, body.order_reference, customer, request_sha256)
    if existing is not None and existing.status != "pending":
        return await get_order(ctx, business, customer, body.order_reference), False
    check_session(await read_session(rt, settings.credentials, sid), settings, gross, business.currency)
    if settings.one_step:  # the capture is booked on the order date: it must be open before Amazon captures
        await check_period_open(ctx.pool, business, body.order_date, "order_date")
    async with ctx.pool.acquire() as conn, conn.transaction():
        inserted = await _insert_order(
            conn, business, customer, body, items, gross, settings.payment_execution, request_sha256
        )
        order = await load_order(conn, business, body.order_reference)
    await complete_checkout(ctx, rt, business, settings, order)
    out = await get_order(ctx, business, customer, body.order_reference)
    if out.status == "declined":
        raise Unprocessable(
            "payment_declined",
            f"Amazon Pay declined the payment ({out.status_reason}); the order {body.order_reference} is recorded "
            "as declined",
        )
    # the same order sent again while the first is still at Amazon goes on with it (the same calls) and is a replay
    return out, inserted and existing is None


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
) -> bool:
    """Insert the order as pending; False when it was there (a concurrent identical request finds it and goes on
    with it)."""
    # no conflict target: every unique index arbitrates, so a concurrent identical request waits for the other
    # transaction and finds its order, whichever index it met first
    inserted = await conn.fetchval(
        "INSERT INTO orders (merchant_id, business, order_ref, customer, order_date, checkout_session_id, "
        "payment_execution, status, gross_minor, bill_to, request_sha256) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10) ON CONFLICT DO NOTHING RETURNING true",
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
    if not inserted:
        if await _existing(conn, business, body.order_reference, customer, request_sha256) is None:
            raise Conflict(
                "checkout_session_used",
                "this Amazon Pay checkout session belongs to another order",
                [FieldError("payment_method.checkout_session_id", "already used")],
            )
        return False
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
    return True


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
