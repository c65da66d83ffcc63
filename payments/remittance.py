"""What a bank transfer's remittance information names: an invoice, an order, a customer.

A customer paying by bank transfer writes something into the remittance line (SEPA "Verwendungszweck"): an
invoice number as the shop printed it, the order id, a customer number, or the payment reference of a dunning
or collection letter (an ISO 11649 "RF" reference, `payments.references`).
`payments.bank` asks `recognise` what a statement line names and books the payment accordingly:

- a line naming a document (an invoice, an order: `Named.document` true) pays it, whatever the amount: in
  part (the rest stays due), in full, or more than owed (the excess is the customer's credit balance, shown
  as a prepayment received in the balance sheet);
- a line naming a letter's payment reference, or only a customer, is a payment of that customer when the amount
  is within the tolerance of what the letter asked for or of what the customer owes (a customer number alone is
  weaker evidence than a document's number).

**Adding a reference pattern** is one function: an async `Recogniser` `(conn, business, remittance) ->
Named | None` that looks the remittance's tokens (or its whole text) up and says whom the money is from and
what it pays. Append it to `RECOGNISERS` below (they are asked in order; the first that recognises the line
wins, so put more specific patterns first), or, from a plugin that `payments` may not import (dunning, desk:
the layers run desk -> dunning -> payments -> ledger), call `register(recogniser)` when it starts.

Tokens are the remittance text split at anything but `A-Z a-z 0-9 _ . / : -`, compared exactly (as the
payment service sent the reference), so that each lookup is an index probe.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, NamedTuple

from ledger.domain import Business
from payments import references

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["RECOGNISERS", "Named", "Recogniser", "Remittance", "recognise", "register"]

_TOKEN = re.compile(r"[A-Za-z0-9_./:-]+")
TOKENS_MAX = 50  # of one line's remittance: enough for every reference a person writes, bounded for the lookups


class Remittance(NamedTuple):
    """A statement line's remittance information (unstructured and structured texts, end-to-end id)."""

    text: str
    tokens: list[str]

    @classmethod
    def of(cls, text: str) -> Remittance:
        return cls(text, list(dict.fromkeys(_TOKEN.findall(text)))[:TOKENS_MAX])


class Named(NamedTuple):
    """Whom a payment is from and what it pays."""

    customer: str
    order_ref: str | None  # the order it pays (the designation of the payment, §366 (1) BGB); None: any
    what: str  # for people and the journal: "invoice RE-4711", "order O-42", "customer C-1"
    document: bool  # names an invoice or an order: booked whatever the amount (part, full or overpayment)
    invoice_ref: str | None = None  # the invoice it names, if any
    # a payment reference Kontor printed (a letter's RF reference): the entry's reference, the amount the letter
    # asked for (matched within the tolerance, like what the customer owes) and the orders it asked about
    payment_reference: str | None = None
    asked: int | None = None
    orders: tuple[str, ...] = ()


Recogniser = Callable[["Connection", Business, Remittance], Awaitable[Named | None]]


async def by_payment_reference(conn: Connection, business: Business, remittance: Remittance) -> Named | None:
    """An ISO 11649 creditor reference Kontor printed on a letter (`payments.references`: check digits first, then
    the registered references), compact or in groups of four."""
    requested = await references.find(conn, business, remittance.text)
    if requested is None:
        return None
    return Named(
        requested.customer,
        None,
        f"payment reference {requested.reference}",
        False,
        payment_reference=requested.reference,
        asked=requested.amount_minor,
        orders=tuple(requested.orders),
    )


async def by_invoice_number(conn: Connection, business: Business, remittance: Remittance) -> Named | None:
    """An invoice number as the payment service sent it (the oldest invoice named, if several)."""
    row = await conn.fetchrow(
        "SELECT d.ref, d.order_ref, o.customer FROM order_documents d "
        "JOIN orders o USING (merchant_id, business, order_ref) WHERE d.merchant_id = $1 AND d.business = $2 "
        "AND d.kind = 'invoice' AND d.ref = ANY($3::text[]) ORDER BY d.document_date, d.ref LIMIT 1",
        business.merchant_id,
        business.code,
        remittance.tokens,
    )
    if row is None:
        return None
    return Named(row["customer"], row["order_ref"], f"invoice {row['ref']}", True, row["ref"])


async def by_order_id(conn: Connection, business: Business, remittance: Remittance) -> Named | None:
    """The shop's order id (the oldest order named, if several)."""
    row = await conn.fetchrow(
        "SELECT order_ref, customer FROM orders WHERE merchant_id = $1 AND business = $2 "
        "AND order_ref = ANY($3::text[]) ORDER BY order_date, order_ref LIMIT 1",
        business.merchant_id,
        business.code,
        remittance.tokens,
    )
    if row is None:
        return None
    return Named(row["customer"], row["order_ref"], f"order {row['order_ref']}", True)


async def by_customer(conn: Connection, business: Business, remittance: Remittance) -> Named | None:
    """A customer number (of a customer with orders)."""
    customer = await conn.fetchval(
        "SELECT customer FROM orders WHERE merchant_id = $1 AND business = $2 AND customer = ANY($3::text[]) "
        "ORDER BY customer LIMIT 1",
        business.merchant_id,
        business.code,
        remittance.tokens,
    )
    return None if customer is None else Named(customer, None, f"customer {customer}", False)


# asked in this order: printed payment references (check digits), documents, then customers
RECOGNISERS: list[Recogniser] = [by_payment_reference, by_invoice_number, by_order_id, by_customer]


def register(recogniser: Recogniser, *, before: Recogniser | None = by_customer) -> None:
    """Add a recogniser (once; again is a no-op), by default before the customer number, the weakest pattern."""
    if recogniser in RECOGNISERS:
        return
    at = RECOGNISERS.index(before) if before in RECOGNISERS else len(RECOGNISERS)
    RECOGNISERS.insert(at, recogniser)


async def recognise(conn: Connection, business: Business, remittance: Remittance) -> Named | None:
    """What the remittance names, by the first recogniser that knows (None: nothing, or no text)."""
    if not remittance.text.strip():
        return None
    for recogniser in RECOGNISERS:
        named = await recogniser(conn, business, remittance)
        if named is not None:
            return named
    return None
