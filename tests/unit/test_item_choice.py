"""Which items of an order a document takes, without a database (payments.item_choice)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger.errors import BadRequest, Conflict, KontorError, Unprocessable
from payments.domain import Item
from payments.item_choice import invoiced_parts, items_to_cancel, items_to_invoice, within_open_rates
from payments.schemas import ItemQuantity
from payments.store import ItemRow


def row(ref: int, state: str = "open", invoice: str | None = None, quantity: int = 3, returned: int = 0) -> ItemRow:
    item = Item(ref, "item", f"item {ref}", quantity, 1190, Decimal(19))
    return ItemRow(item=item, state=state, invoice_ref=invoice, returned_qty=returned)


ITEMS = {1: row(1), 2: row(2, "invoiced", "INV-1", returned=1), 3: row(3, "cancelled")}


def refused(call: object) -> tuple[str, list[str]]:
    assert isinstance(call, KontorError)
    return call.code, [e.field for e in call.errors]


def test_an_invoice_takes_open_items_whole_and_refuses_the_rest_naming_the_field() -> None:
    assert [i.item_ref for i in items_to_invoice(ITEMS, [1])] == [1]
    with pytest.raises(BadRequest) as twice:
        items_to_invoice(ITEMS, [1, 1])
    assert twice.value.code == "item_repeated"
    with pytest.raises(Unprocessable) as unknown:
        items_to_invoice(ITEMS, [1, 9])
    assert refused(unknown.value) == ("item_unknown", ["items[1].item_reference"])
    with pytest.raises(Conflict) as busy:
        items_to_invoice(ITEMS, [1], {1: "INV-2"})
    assert busy.value.code == "item_not_open"
    assert "INV-2" in busy.value.detail


def test_a_cancellation_takes_only_items_not_yet_invoiced() -> None:
    assert [i.item_ref for i in items_to_cancel(ITEMS, [1], {})] == [1]
    for refs, reserved in (([2], {}), ([3], {}), ([1], {1: "INV-2"})):
        with pytest.raises(Conflict) as not_cancellable:
            items_to_cancel(ITEMS, refs, reserved)
        assert refused(not_cancellable.value) == ("item_not_cancellable", ["items[0].item_reference"])


def test_a_return_takes_what_was_invoiced_and_not_yet_returned() -> None:
    [(item, quantity)] = invoiced_parts(ITEMS, [ItemQuantity(item_reference=2)], "INV-1")
    assert (item.item_ref, quantity) == (2, 2)  # 3 invoiced, 1 returned
    with pytest.raises(Unprocessable) as too_many:
        invoiced_parts(ITEMS, [ItemQuantity(item_reference=2, quantity=3)], "INV-1")
    assert refused(too_many.value) == ("return_exceeds_invoiced", ["items[0].quantity"])
    with pytest.raises(Conflict) as other_invoice:
        invoiced_parts(ITEMS, [ItemQuantity(item_reference=2)], "INV-9")
    assert other_invoice.value.code == "item_not_invoiced"
    [(_, goodwill)] = invoiced_parts(ITEMS, [ItemQuantity(item_reference=2)], None, returns=False)
    assert goodwill == 3  # a goodwill credit is not limited by what was returned


def test_a_credit_stays_within_what_is_open_at_its_rate() -> None:
    within_open_rates({Decimal(19): 1190}, {Decimal(19): 1190}, "EUR")
    with pytest.raises(Unprocessable) as exceeds:
        within_open_rates({Decimal(7): 100}, {Decimal(19): 1190}, "EUR")
    assert exceeds.value.code == "credit_exceeds_invoiced"
