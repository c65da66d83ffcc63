"""Dunning letters and the collection hand-over letter: mailable documents, as PDF and as HTML.

A letter is assembled (`notice_letter`, `case_letter`) from what is stored and never changes — the dunning
notice's content (level, items, fees, interest, pay-by date; `dunning.runs`), the collection case and the open
items at its hand-over, the orders' bill-to address and invoices — and from the business profile
(`ledger.profiles`: letterhead, bank, footer, language). Without a profile there is no sender and no bank
account to pay to, so the letter routes answer 409 `profile_missing`; without a postal address in the bill-to
(street, postcode, place, country, a name or company) there is nobody to post it to: 409 `address_missing`, naming
the missing fields. Dunning runs never need either: the notice is recorded and booked all the same.

Payment reference: every letter prints an ISO 11649 creditor reference (`payments.references`) registered
with the customer and the amount; a bank statement line naming it pays that customer's claims.

What a letter says is `dunning.letter_text`'s, its layout `dunning.letter_render`'s (`render_pdf` and `render_html`
are re-exported here for the routes), the window's address `dunning.letter_address`'s.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

from dunning import accounts
from dunning.items import rate_on
from dunning.letter_address import (
    addressee_lines,
    bill_to_sources,
    missing_address,
    recipient_of,
)
from dunning.letter_render import render_html, render_pdf
from dunning.letter_text import (
    Interest,
    Letter,
    LetterItem,
)
from dunning.policy import base_rates, load_policy
from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import Conflict, NotFound
from ledger.money import parse_amount
from ledger.profile_fields import ProfileOut
from ledger.profiles import Logo, get_profile, load_logo
from payments.references import Requested, creditor_reference
from payments.references import register as register_references

__all__ = ["Letter", "case_letter", "natural_key", "notice_letter", "render_html", "render_pdf", "sort_items"]


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sorts numbers within text by value: INV-6-2 before INV-6-10 (digit runs compare as numbers)."""
    parts = re.split(r"([0-9]+)", text)
    return tuple((0, int(p)) if n % 2 else (1, p.casefold()) for n, p in enumerate(parts))


def sort_items(items: Sequence[LetterItem]) -> list[LetterItem]:
    """The claims in the order of their first invoice's date (else their due date), then by due date, then by
    invoice number (else order) in natural order; the invoices of a claim by date, then number."""

    def invoice(entry: tuple[str, date]) -> tuple[date, tuple[tuple[int, int | str], ...]]:
        return entry[1], natural_key(entry[0])

    def claim(item: LetterItem) -> tuple[date, date, tuple[tuple[int, int | str], ...]]:
        first = item.invoices[0] if item.invoices else None
        return (first[1] if first else item.due), item.due, natural_key(first[0] if first else item.order or "")

    return sorted((replace(i, invoices=sorted(i.invoices, key=invoice)) for i in items), key=claim)


def _postal(bill_to: dict[str, Any] | None, order: str | None, customer: str) -> dict[str, Any]:
    """The bill-to a letter is addressed to; 409 `address_missing` naming the fields it lacks (a letter that
    cannot be posted must not leave the house, like one without a sender: `profile_missing`)."""
    missing = missing_address(bill_to)
    if missing:
        fields = ", ".join(m.field for m in missing)
        where = (
            f"the bill-to of order {order} (customer {customer}) has no postal address: {fields} missing"
            if order
            else f"customer {customer} has no order, so no bill-to to address the letter to"
        )
        raise Conflict("address_missing", f"{where}; the letter cannot be posted (the notice is recorded)", missing)
    return bill_to or {}


async def _orders(
    ctx: Kontor, business: Business, customer: str, orders: Sequence[str]
) -> tuple[dict[str, list[tuple[str, date]]], dict[str, Any] | None, str | None]:
    """The invoices (number, date) of each order, and the bill-to of the customer's latest of them (else of the
    customer's latest order) with that order's reference."""
    invoices = await ctx.pool.fetch(
        "SELECT order_ref, ref, document_date FROM order_documents WHERE merchant_id = $1 AND business = $2 "
        "AND kind = 'invoice' AND order_ref = ANY($3::text[]) ORDER BY document_date, ref",
        business.merchant_id,
        business.code,
        list(orders),
    )
    by_order: dict[str, list[tuple[str, date]]] = {}
    for r in invoices:
        by_order.setdefault(r["order_ref"], []).append((r["ref"], r["document_date"]))
    latest = await ctx.pool.fetchrow(
        "SELECT order_ref, bill_to FROM orders WHERE merchant_id = $1 AND business = $2 AND customer = $3 "
        "ORDER BY order_ref = ANY($4::text[]) DESC, order_date DESC, created_at DESC LIMIT 1",
        business.merchant_id,
        business.code,
        customer,
        list(orders),
    )
    if latest is None:
        return by_order, None, None
    return by_order, latest["bill_to"], latest["order_ref"]


async def _sender(ctx: Kontor, business: Business) -> tuple[ProfileOut, Logo | None]:
    return await get_profile(ctx, business, missing="409"), await load_logo(ctx, business)


def _minor(text: str | None, currency: str) -> int:
    return parse_amount(text, currency, allow_zero=True) if text else 0


async def notice_letter(ctx: Kontor, business: Business, notice_id: int) -> Letter:
    """The letter of a dunning notice (404 `notice_not_found`, 409 `profile_missing`)."""
    row = await ctx.pool.fetchrow(
        "SELECT customer, level, issued_on, pay_by, content FROM dunning_notices WHERE merchant_id = $1 "
        "AND business = $2 AND notice_id = $3",
        business.merchant_id,
        business.code,
        notice_id,
    )
    if row is None:
        raise NotFound("notice_not_found", f"dunning notice {notice_id} not found")
    sender, logo = await _sender(ctx, business)
    c: dict[str, Any] = row["content"]
    cur = c["currency"]
    orders = [i["order_reference"] for i in c["items"] if i["order_reference"]]
    invoices, bill_to_found, bill_to_order = await _orders(ctx, business, row["customer"], orders)
    bill_to = _postal(bill_to_found, bill_to_order, row["customer"])
    items = [
        LetterItem(
            invoices=invoices.get(i["order_reference"] or "", []),
            order=i["order_reference"],
            due=date.fromisoformat(i["due_date"]),
            open_minor=_minor(i["amount"], cur),
        )
        for i in c["items"]
    ]
    if "final" in c:
        final, after_final = bool(c["final"]), str(c["after_final"])
    else:  # notices issued before letters existed: the policy as it is now
        policy, _ = await load_policy(ctx, business)
        final, after_final = row["level"] == len(policy.levels) and row["level"] > 1, policy.after_final
    interest_minor = _minor(c["interest"], cur)
    interest = None
    if interest_minor and c.get("default_on"):
        points, base = c.get("interest_points"), c.get("base_rate")
        if points is None or base is None:
            policy, _ = await load_policy(ctx, business)
            points = str(policy.consumer_points)
            base = str(rate_on(await base_rates(ctx), row["issued_on"]))
        interest = Interest(
            start=date.fromisoformat(c["default_on"]),
            through=row["issued_on"],
            basis_minor=_minor(c["principal"], cur),
            base_rate=Decimal(base),
            points=Decimal(points),
        )
    language = sender.letter_language
    addressee, names = addressee_lines(bill_to, sender.address.country, language)
    return Letter(
        kind="notice",
        number=notice_id,
        level=row["level"],
        final=final,
        after_final=after_final,
        language=language,
        sender=sender,
        logo=logo,
        addressee=addressee,
        recipient=recipient_of(bill_to),
        customer=row["customer"],
        issued_on=row["issued_on"],
        pay_by=row["pay_by"],
        currency=cur,
        items=sort_items(items),
        fee_minor=_minor(c["fee"], cur),
        flat_fee_minor=_minor(c.get("flat_fee"), cur),
        costs_minor=_minor(c["costs"], cur),
        interest_minor=interest_minor,
        interest=interest,
        total_minor=_minor(c["total"], cur),
        payment_reference=creditor_reference("dunning_notice", notice_id),
        addressee_names=names,
        sources=bill_to_sources(bill_to),
        country=business.country,
    )


async def case_letter(ctx: Kontor, business: Business, case_id: int) -> Letter:
    """The letter telling the customer their debt was handed over for collection, with what was open then
    (404 `collection_case_not_found`, 409 `profile_missing`). Its payment reference is registered on the
    first request, so a payment the customer still makes to the merchant is recognised."""
    row = await ctx.pool.fetchrow(
        "SELECT customer, amount_minor, opened_on FROM collection_cases WHERE merchant_id = $1 AND business = $2 "
        "AND case_id = $3",
        business.merchant_id,
        business.code,
        case_id,
    )
    if row is None:
        raise NotFound("collection_case_not_found", f"collection case {case_id} not found")
    sender, logo = await _sender(ctx, business)
    customer, on = row["customer"], row["opened_on"]
    cur = business.currency
    open_items = await accounts.customer_open_items(ctx, business, customer, on)
    overdue = [p for p in open_items.principal if p.overdue]
    orders = [p.order_reference for p in overdue if p.order_reference]
    invoices, bill_to_found, bill_to_order = await _orders(ctx, business, customer, orders)
    bill_to = _postal(bill_to_found, bill_to_order, customer)
    notices = await ctx.pool.fetch(
        "SELECT issued_on FROM dunning_notices WHERE merchant_id = $1 AND business = $2 AND customer = $3 "
        "AND issued_on <= $4 ORDER BY issued_on DESC LIMIT 4",
        business.merchant_id,
        business.code,
        customer,
        on,
    )
    reference = creditor_reference("collection_case", case_id)
    if row["amount_minor"] > 0:
        async with ctx.pool.acquire() as conn:
            requested = Requested(reference, customer, row["amount_minor"], orders, f"collection_case:{case_id}")
            await register_references(conn, business, [requested])
    language = sender.letter_language
    addressee, names = addressee_lines(bill_to, sender.address.country, language)
    return Letter(
        kind="collection",
        number=case_id,
        level=0,
        final=True,
        after_final="collection",
        language=language,
        sender=sender,
        logo=logo,
        addressee=addressee,
        recipient=recipient_of(bill_to),
        customer=customer,
        issued_on=on,
        pay_by=None,
        currency=cur,
        items=sort_items(
            [
                LetterItem(
                    invoices=invoices.get(p.order_reference or "", []),
                    order=p.order_reference,
                    due=p.due_date,
                    open_minor=_minor(p.amount, cur),
                )
                for p in overdue
            ]
        ),
        fee_minor=0,
        flat_fee_minor=0,
        costs_minor=_minor(open_items.costs, cur),
        interest_minor=_minor(open_items.interest, cur),
        interest=None,
        total_minor=row["amount_minor"],
        payment_reference=reference,
        earlier_notices=sorted(r["issued_on"] for r in notices),
        addressee_names=names,
        sources=bill_to_sources(bill_to),
        country=business.country,
    )
