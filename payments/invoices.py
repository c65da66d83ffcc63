"""Invoices of an order: reported (`create_invoice`), their capture planned and requested at Amazon Pay after
commit, and booked once Amazon accepted it (`book_planned_invoice`, also from the IPN); the use-case pattern is
`payments.orders`'s: validate, record, call Amazon after commit, record the outcome.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import msgspec

from ledger.books import accounts_by_role, book, run_receivable_hooks
from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import Conflict, Unprocessable
from ledger.money import format_amount
from payments import captures
from payments.amazon.client import AmazonPayError, Charge
from payments.bookings import record_charge
from payments.charges import charge_out, wind_down
from payments.document_replies import document_response, iso_or_none, not_before, rates_json, stored_reply
from payments.domain import gross_by_rate, invoice_lines
from payments.item_choice import items_to_invoice
from payments.notify import emit, emit_balance_updated
from payments.refusals import amazon_refused, gateway_unavailable
from payments.runtime import Payments
from payments.schemas import (
    ChargeOut,
    InvoiceCreate,
)
from payments.settings import MerchantSettings, load_settings
from payments.store import (
    OrderRow,
    check_period_open,
    insert_document,
    load_items,
    load_order,
    lock_order,
    refresh_status,
    stored_document,
)

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["book_planned_invoice", "create_invoice"]


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
        replay = await stored_reply(conn, business, "invoice", body.invoice_reference, request_sha256)
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
    chosen = items_to_invoice(items, [i.item_reference for i in body.items], reserved)
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
    chosen = items_to_invoice(items, [i.item_reference for i in body.items])
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
