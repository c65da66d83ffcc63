"""Which items of an order a document takes, pure: the items an invoice takes whole, the items a cancellation
takes, the invoiced parts a return or goodwill takes, and the limit of a credit per VAT rate. Each refusal names
the request's field (`items[i].item_reference`, `items[i].quantity`).
"""

from __future__ import annotations

from decimal import Decimal

from ledger.errors import BadRequest, Conflict, FieldError, Unprocessable
from ledger.money import format_amount
from payments.domain import Item
from payments.schemas import ItemQuantity
from payments.store import ItemRow

__all__ = ["invoiced_parts", "item_named", "items_to_cancel", "items_to_invoice", "no_item_twice", "within_open_rates"]


def item_named(items: dict[int, ItemRow], ref: int, index: int) -> ItemRow:
    """The order's item `ref`, named at `items[index]` of the request; 422 `item_unknown` naming that field."""
    row = items.get(ref)
    if row is None:
        raise Unprocessable(
            "item_unknown",
            f"order has no item {ref}",
            [FieldError(f"items[{index}].item_reference", "not an item of this order")],
        )
    return row


def no_item_twice(refs: list[int], why: str = "") -> None:
    """400 `item_repeated` when the request names an item twice (`why` is appended to the message)."""
    if len(set(refs)) != len(refs):
        raise BadRequest("item_repeated", "an item is named twice" + why)


def items_to_cancel(items: dict[int, ItemRow], refs: list[int], reserved: dict[int, str]) -> list[Item]:
    """The named items, each not yet invoiced and not being invoiced (`reserved`: item -> invoice); 409
    `item_not_cancellable` otherwise."""
    no_item_twice(refs)
    chosen = []
    for i, ref in enumerate(refs):
        row = item_named(items, ref, i)
        if ref in reserved:
            raise Conflict(
                "item_not_cancellable",
                f"item {ref} is being invoiced: Amazon Pay is asked to capture invoice {reserved[ref]}; "
                "report that invoice again to finish it",
                [FieldError(f"items[{i}].item_reference", "being invoiced")],
            )
        if row.state != "open":
            raise Conflict(
                "item_not_cancellable",
                f"item {ref} is {row.state}: only items not yet invoiced can be "
                "cancelled; return invoiced items instead",
                [FieldError(f"items[{i}].item_reference", f"item is {row.state}")],
            )
        chosen.append(row.item)
    return chosen


def invoiced_parts(
    items: dict[int, ItemRow], specs: list[ItemQuantity], invoice_ref: str | None, *, returns: bool = True
) -> list[tuple[Item, int]]:
    """(item, quantity) pairs of invoiced items; returns are limited to what was invoiced and not returned."""
    parts = []
    for i, spec in enumerate(specs):
        row = item_named(items, spec.item_reference, i)
        path = f"items[{i}]"
        if row.state != "invoiced" or (invoice_ref is not None and row.invoice_ref != invoice_ref):
            raise Conflict(
                "item_not_invoiced",
                f"item {spec.item_reference} is not invoiced" + (f" by invoice {invoice_ref}" if invoice_ref else ""),
                [FieldError(f"{path}.item_reference", "not invoiced" + (" by this invoice" if invoice_ref else ""))],
            )
        left = row.item.quantity - (row.returned_qty if returns else 0)
        quantity = spec.quantity or left
        if left <= 0:
            raise Unprocessable(
                "return_exceeds_invoiced",
                f"item {spec.item_reference}: nothing left to return ({row.item.quantity} invoiced, "
                f"{row.returned_qty} returned)",
                [FieldError(f"{path}.item_reference", "already returned in full")],
            )
        if quantity > left:
            raise Unprocessable(
                "return_exceeds_invoiced",
                f"item {spec.item_reference}: {quantity} asked, {left} invoiced and not yet returned",
                [FieldError(f"{path}.quantity", f"at most {left}")],
            )
        parts.append((row.item, quantity))
    return parts


def items_to_invoice(items: dict[int, ItemRow], refs: list[int], reserved: dict[int, str] | None = None) -> list[Item]:
    """The named items, each open and not being invoiced (its capture requested at Amazon) by another invoice."""
    no_item_twice(refs, "; items are invoiced whole")
    chosen = []
    for i, ref in enumerate(refs):
        row = item_named(items, ref, i)
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


def within_open_rates(by_rate: dict[Decimal, int], open_rates: dict[Decimal, int], business_currency: str) -> None:
    """422 `credit_exceeds_invoiced` when a credit's gross at a VAT rate (minor units) exceeds what is invoiced
    and not yet credited at that rate."""
    for rate, gross in by_rate.items():
        if gross > open_rates.get(rate, 0):
            raise Unprocessable(
                "credit_exceeds_invoiced",
                f"the credit of {format_amount(gross, business_currency)} at {rate} % exceeds what was invoiced "
                f"and not yet credited at that rate ({format_amount(open_rates.get(rate, 0), business_currency)}; "
                "goodwill credits count)",
            )
