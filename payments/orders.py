"""Orders and invoices: the use cases that start an order's payment and ship it, and the order view.

Each use case is: validate everything (reading Amazon where the input names an Amazon object; dates in range and,
where Amazon's step books on them, in an open month); record in one transaction; call Amazon Pay after commit
(never inside a database transaction); record the outcome in a second transaction (payments.charges). Amazon calls
carry idempotency keys derived from the order and recorded before the call, so a retry of the same request, after
a crash or a lost response, repeats the same Amazon call instead of a new one; the retry of an order or invoice
whose Amazon step did not finish resumes it. A two-step invoice is booked only once Amazon accepted its capture
(payments.captures); Amazon refusing it is a problem and books nothing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

from ledger.books import accounts_by_role, book, run_receivable_hooks
from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import BadRequest, Conflict, FieldError, Unprocessable
from ledger.money import AmountError, format_amount, parse_amount
from ledger.tenancy import is_country
from payments import captures
from payments.amazon.client import AmazonPayError, Charge
from payments.bookings import record_charge
from payments.charges import charge_out, check_session, complete_checkout, read_session, wind_down
from payments.domain import Item, gross_by_rate, invoice_lines
from payments.notify import emit, emit_balance_updated
from payments.refusals import amazon_refused, gateway_unavailable
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
from payments.settings import MerchantSettings, load_settings
from payments.store import (
    OrderRow,
    check_period_open,
    insert_document,
    load_items,
    load_order,
    lock_order,
    order_money,
    refresh_status,
    stored_document,
)

if TYPE_CHECKING:
    from ledger.db import Connection

CREDIT_KINDS = frozenset({"return", "goodwill"})

__all__ = [
    "CREDIT_KINDS",
    "book_planned_invoice",
    "create_invoice",
    "create_order",
    "document_response",
    "get_order",
    "not_before",
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
    """Book revenue and VAT for whole items of one shipment. Two-step orders capture the invoice's gross first
    (payments.captures): the invoice is booked once Amazon accepted the capture; a refusal is a 4xx problem
    (`amazon_pay_<reasonCode>`) and books nothing; Amazon out of reach is a 502 after which the same request
    repeats the same capture."""
    settings = await load_settings(ctx, rt, business)
    async with ctx.pool.acquire() as conn, conn.transaction():
        order = await load_order(conn, business, order_ref, customer=customer, lock=True)
        replay = replay_or_refuse(
            await stored_document(conn, business, "invoice", body.invoice_reference),
            request_sha256,
            f"invoice {body.invoice_reference}",
        )
        if replay is not None:
            return replay, False
        plan: captures.CapturePlan | None = None
        response: dict[str, Any] = {}
        if order.one_step:
            _check_invoiceable(order, body)
            response = await _book_invoice(ctx, conn, business, order, body, request_sha256)
        else:
            plan = await _plan_capture(ctx, conn, business, order, body, request_sha256)
    if plan is not None:
        response = await _capture(ctx, rt, business, settings, order, plan, body.soft_descriptor)
    await wind_down(ctx, rt, business, settings, order_ref)
    return response, True


async def _plan_capture(
    ctx: Kontor, conn: Connection, business: Business, order: OrderRow, body: InvoiceCreate, request_sha256: bytes
) -> captures.CapturePlan:
    """The capture to request for the invoice, recorded (or found again) inside the caller's transaction."""
    plan = await captures.load_plan(conn, business, body.invoice_reference, lock=True)
    if plan is not None and (plan.request_sha256 != request_sha256 or plan.order_ref != order.order_ref):
        raise Conflict(
            "reference_reused",
            f"invoice {body.invoice_reference} was already reported with other data; references are unique",
        )
    if plan is not None and plan.state == "requested":
        return plan  # Amazon's answer was lost: the same call again
    _check_invoiceable(order, body)
    await check_period_open(conn, business, body.invoice_date, "invoice_date")
    items = await load_items(conn, business, order.order_ref)
    reserved = await captures.reserved_items(conn, business, order.order_ref)
    chosen = _whole_items(items, [i.item_reference for i in body.items], reserved)
    by_rate = gross_by_rate((item, item.quantity) for item in chosen)
    invoice_lines(
        await accounts_by_role(ctx, business), order.customer, by_rate, business.currency
    )  # the accounts exist
    amount = sum(by_rate.values())
    if amount <= 0:
        raise Unprocessable("invoice_total_not_positive", "the invoiced items total nothing to capture")
    charge_id = await captures.open_authorization(conn, business, order.order_ref, amount, ctx.clock())
    if charge_id is None and order.charge_permission_id is None:
        raise Conflict("order_not_payable", f"order {order.order_ref} has no Amazon Pay charge permission")
    if plan is None:
        plan = captures.CapturePlan(
            order_ref=order.order_ref,
            invoice_ref=body.invoice_reference,
            sequence=await captures.next_sequence(conn, business, order.order_ref),
            attempt=1,
            items=tuple(item.item_ref for item in chosen),
            amount=amount,
            body=msgspec.to_builtins(body),
            request_sha256=request_sha256,
            charge_id=charge_id,
            new_charge=charge_id is None,
            state="requested",
            reason=None,
        )
        await captures.insert_plan(conn, business, plan)
        return plan
    if plan.attempt >= captures.ATTEMPTS_MAX:
        raise Conflict(
            "invoice_capture_attempts_exhausted",
            f"Amazon Pay refused the capture of invoice {plan.invoice_ref} {plan.attempt} times (last: {plan.reason}); "
            "report the shipment under a new invoice reference",
        )
    plan = replace(plan, attempt=plan.attempt + 1, charge_id=charge_id, new_charge=charge_id is None, state="requested")
    await captures.set_plan(conn, business, plan)
    return plan


async def _capture(
    ctx: Kontor,
    rt: Payments,
    business: Business,
    settings: MerchantSettings,
    order: OrderRow,
    plan: captures.CapturePlan,
    soft_descriptor: str | None,
) -> dict[str, Any]:
    """Ask Amazon for the planned capture, then book the invoice with it (or record the refusal and refuse)."""
    what = f"the capture of invoice {plan.invoice_ref}"
    try:
        plan, charge = await captures.request_capture(ctx, rt, business, settings, order, plan, soft_descriptor)
    except AmazonPayError as exc:
        if not exc.reachable:
            raise gateway_unavailable(exc) from exc
        await _refused(ctx, rt, business, settings, order, plan, exc.reason_code)
        raise amazon_refused(exc, what) from exc
    if charge.state not in ("Captured", "CaptureInitiated"):
        async with ctx.pool.acquire() as conn, conn.transaction():
            await record_charge(ctx, conn, business, order, charge, on=ctx.today())
        reason = charge.reason_code or charge.state
        await _refused(ctx, rt, business, settings, order, replace(plan, charge_id=None), reason)
        raise amazon_refused(AmazonPayError(422, reason, f"the charge {charge.charge_id} is {charge.state}"), what)
    async with ctx.pool.acquire() as conn, conn.transaction():
        await lock_order(conn, business, order.order_ref)
        return await book_planned_invoice(ctx, conn, business, order, plan, charge)


async def _refused(
    ctx: Kontor,
    rt: Payments,
    business: Business,
    settings: MerchantSettings,
    order: OrderRow,
    plan: captures.CapturePlan,
    reason: str,
) -> None:
    """Amazon refused the capture: nothing is booked, the items are free again; the authorization's state as
    Amazon has it now is recorded (a declined capture declines it)."""
    await captures.set_plan(ctx.pool, business, replace(plan, state="refused", reason=reason[:200]))
    if plan.new_charge or plan.charge_id is None:
        return
    try:
        charge = await rt.gateway.get_charge(settings.credentials, plan.charge_id)
    except AmazonPayError:
        return  # its IPN will tell
    async with ctx.pool.acquire() as conn, conn.transaction():
        await record_charge(ctx, conn, business, order, charge, on=ctx.today())


async def book_planned_invoice(
    ctx: Kontor, conn: Connection, business: Business, order: OrderRow, plan: captures.CapturePlan, charge: Charge
) -> dict[str, Any]:
    """Book a two-step invoice whose capture Amazon accepted (its answer, the retry, or the charge's IPN), once:
    the invoice's entry and document, the charge linked to it (and its capture booked when Captured). Inside the
    caller's transaction, which holds the order's lock; returns the invoice's response."""
    current = await captures.load_plan(conn, business, plan.invoice_ref, lock=True)
    if current is not None and current.state == "booked":
        stored = await stored_document(conn, business, "invoice", plan.invoice_ref)
        if stored is not None:
            booked: dict[str, Any] = stored["response"]
            return booked
    await record_charge(ctx, conn, business, order, charge, on=ctx.today(), invoice_ref=plan.invoice_ref)
    body = msgspec.convert(plan.body, InvoiceCreate)
    out = charge_out(charge, business, invoice_ref=plan.invoice_ref)
    response = await _book_invoice(
        ctx, conn, business, order, body, plan.request_sha256, sequence=plan.sequence, charges=[out]
    )
    await captures.set_plan(conn, business, replace(plan, charge_id=charge.charge_id, state="booked", reason=None))
    return response


async def _book_invoice(
    ctx: Kontor,
    conn: Connection,
    business: Business,
    order: OrderRow,
    body: InvoiceCreate,
    request_sha256: bytes,
    *,
    sequence: int | None = None,
    charges: list[ChargeOut] | None = None,
) -> dict[str, Any]:
    """The invoice's entry, items, document and notifications, in the caller's transaction."""
    customer, order_ref = order.customer, order.order_ref
    items = await load_items(conn, business, order_ref)
    chosen = _whole_items(items, [i.item_reference for i in body.items])
    by_rate = gross_by_rate((item, item.quantity) for item in chosen)
    gross = sum(by_rate.values())
    roles = await accounts_by_role(ctx, business)
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
    if sequence is None:
        sequence = await captures.next_sequence(conn, business, order_ref)
    response = document_response(
        business, "invoice", body.invoice_reference, order_ref, body.invoice_date, gross, entry_id
    )
    response["charges"] = [msgspec.to_builtins(c) for c in charges or []]
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
    await run_receivable_hooks(ctx, conn, business, customer, on=body.invoice_date)
    await emit_balance_updated(conn, business, customer, "invoice.created")
    await refresh_status(conn, business, order_ref)
    return response


def _check_invoiceable(order: OrderRow, body: InvoiceCreate) -> None:
    """The order can be invoiced now: paid (one-step), or Amazon can be asked to capture (two-step: after a declined
    capture Amazon decides whether the charge permission can be charged again) and the date follows the order's."""
    why = {
        "pending": "its payment is not completed at Amazon Pay yet (report the order again to resume)",
        "authorization_pending": "Amazon Pay has not decided its authorization yet; invoice once it is authorized",
        "declined": "its payment was declined",
        "cancelled": "it was cancelled",
    }.get(order.status)
    if order.status == "declined" and not order.one_step and order.charge_permission_id is not None:
        why = None
    if why is not None:
        raise Conflict("order_not_payable", f"order {order.order_ref} cannot be invoiced: {why}")
    not_before(body.invoice_date, order.order_date, "invoice_date", f"the order date of {order.order_ref}")


def not_before(value: date, earliest: date, field: str, what: str) -> None:
    """422 `date_before_document` naming `field` when a document is dated before the one it follows."""
    if value < earliest:
        raise Unprocessable(
            "date_before_document",
            f"{field} {value.isoformat()} is before {what} ({earliest.isoformat()})",
            [FieldError(field, f"must not be before {earliest.isoformat()}")],
        )


def _whole_items(items: dict[int, Any], refs: list[int], reserved: dict[int, str] | None = None) -> list[Item]:
    """The named items, each open and not being invoiced (its capture requested at Amazon) by another invoice."""
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
        busy = (reserved or {}).get(ref)
        if row.state != "open" or busy is not None:
            state, invoice = (row.state, row.invoice_ref) if row.state != "open" else ("being invoiced", busy)
            where = f" (invoice {invoice})" if invoice else ""
            raise Conflict(
                "item_not_open",
                f"item {ref} is already {state}{where}",
                [FieldError(f"items[{i}].item_reference", f"item is {state}")],
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
