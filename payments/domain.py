"""The pure rules of orders paid through Amazon Pay: what each business event books, and what may be refunded.

Design overview. An order has items (whole positions, each with a VAT rate). An invoice covers whole
items and books revenue and VAT per rate (tax extracted from the gross, half-up). Returns book a
credit note (revenue and VAT back per rate); goodwills book sales deductions with VAT, split across the
rates pro rata when given as one gross amount. Money moves separately: a capture completed at Amazon
books Dr PSP / Cr AR, a refund completed Dr AR / Cr PSP, a bank payment Dr BANK / Cr AR, a chargeback
Dr AR / Cr PSP (the claim revives, no VAT event).

Refunds follow credits only as far as the customer has paid for them; the rest is offset against what
is open. Amazon limits the refunds of a charge (with chargebacks) to the captured amount plus
min(15 %, 75 USD/GBP/EUR, 8,400 JPY) and to 10 refunds (developer.amazon.com/docs/amazon-pay-api-v2/refund.html);
a refund larger than one charge's headroom is spread over the order's charges.

Accounts are found by role (AR, PSP, REV_19, VAT_19, RED_7, ...), never by number. No I/O here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from ledger.books import Roles
from ledger.domain import Account, LineDraft, Side
from ledger.errors import FieldError, Unprocessable
from ledger.money import allocate, minor_per_unit, vat_from_gross

__all__ = [
    "CANCELLATION_REASONS",
    "GOODWILL_REASONS",
    "POSITION_TYPES",
    "REFUNDS_PER_CHARGE_MAX",
    "RETURN_REASONS",
    "ChargeRoom",
    "Item",
    "OrderMoney",
    "RateTotals",
    "amazon_allowance",
    "credit_lines",
    "credit_tax",
    "gross_by_rate",
    "invoice_lines",
    "plan_refund",
    "refund_headroom",
    "refundable",
    "split_by_rate",
    "transfer_lines",
]

POSITION_TYPES = frozenset(
    {
        "SALES_ARTICLE",
        "DISCOUNT",
        "SHIPPING_COSTS",
        "SHIPPING_COSTS_EXPRESS",
        "FREE_ARTICLE",
        "SERVICE_CHARGE",
        "CASH_ON_DELIVERY",
        "GIFT_CARD_VOUCHER_SALE",
        "MARKETPLACE_PROVISION",
        "SUBSCRIPTION_ORDER",
    }
)
GOODWILL_REASONS = frozenset(
    {
        "CUSTOMER_COMPLAINT",
        "DELIVERY_DELAYED",
        "ARTICLE_PARCEL_MISSING",
        "CORRECTION_VOUCHER",
        "ARTICLE_DEFECTIVE",
        "CORRECTION_PRICE",
        "LOSS_OF_RETURN_POST",
        "LOSS_OF_RETURN_WAREHOUSE",
        "LOSS_OF_DELIVERY",
        "CONTRADICTION_OF_SIGNATURE",
        "FRAUD",
        "ISSUE_IN_STORE",
        "REFUND_EXPRESS_COSTS",
        "LOSS_OF_DELIVERY_WARENPOST",
        "WRONG_DELIVERY",
        "OTHER",
    }
)
RETURN_REASONS = frozenset({"CUSTOMER_RETURN", "CARRIER_RETURN"})
CANCELLATION_REASONS = frozenset(
    {"OUT_OF_STOCK", "CUSTOMER_CANCELLATION", "PREPAYMENT_NOT_RECEIVED", "CUSTOMER_SERVICE"}
)
REFUNDS_PER_CHARGE_MAX = 10
_ALLOWANCE_UNITS = {"JPY": 8_400}  # else 75 units (USD, GBP, EUR)


@dataclass(frozen=True, slots=True)
class Item:
    """One order position; the gross unit price is negative for discounts only."""

    item_ref: int
    position_type: str
    description: str
    quantity: int
    gross_unit_minor: int
    vat_rate: Decimal

    def gross(self, quantity: int | None = None) -> int:
        return self.gross_unit_minor * (self.quantity if quantity is None else quantity)


def gross_by_rate(parts: Iterable[tuple[Item, int]]) -> dict[Decimal, int]:
    """Gross per VAT rate of (item, quantity) pairs; a rate whose total is negative is refused."""
    totals: dict[Decimal, int] = defaultdict(int)
    for item, quantity in parts:
        totals[item.vat_rate] += item.gross(quantity)
    if any(total < 0 for total in totals.values()):
        raise Unprocessable("discount_exceeds_items", "discounts exceed the items they belong to at one VAT rate")
    return {rate: total for rate, total in sorted(totals.items()) if total}


def invoice_lines(roles: Roles, customer: str, by_rate: Mapping[Decimal, int], currency: str) -> tuple[LineDraft, ...]:
    """Dr AR (customer) gross / Cr revenue net and output VAT per rate."""
    lines = [LineDraft(roles("AR"), Side.DEBIT, sum(by_rate.values()), currency, customer)]
    lines += _per_rate(roles, "REV", by_rate, currency, Side.CREDIT)
    return tuple(lines)


@dataclass(frozen=True, slots=True)
class RateTotals:
    """What an order's documents booked at one VAT rate: invoiced and credited (returns, goodwills) gross and VAT."""

    invoiced_gross: int = 0
    invoiced_tax: int = 0
    credited_gross: int = 0
    credited_tax: int = 0


def credit_tax(by_rate: Mapping[Decimal, int], totals: Mapping[Decimal, RateTotals]) -> dict[Decimal, int]:
    """The VAT a credit (credit note, goodwill) takes back per rate: its own VAT, half-up (per document, §14 UStG),
    kept so that all credits so far have taken back the invoices' VAT pro rata to within one cent (floor and
    ceiling of invoiced VAT x credited gross / invoiced gross). So the credit that takes the rest of a rate's gross
    takes exactly the rest of its VAT, and credits never take back more VAT than was charged: three returns of
    1.05 at 19 % take 0.17, 0.17 and 0.16 of the invoice's 0.50, never 0.51."""
    taxes = {}
    for rate, gross in by_rate.items():
        t = totals.get(rate, RateTotals())
        own = vat_from_gross(gross, rate)
        if t.invoiced_gross <= 0:
            taxes[rate] = own
            continue
        share = t.invoiced_tax * min(t.credited_gross + gross, t.invoiced_gross)
        low = share // t.invoiced_gross - t.credited_tax
        high = -(-share // t.invoiced_gross) - t.credited_tax
        taxes[rate] = max(0, min(gross, high, max(low, own)))
    return taxes


def credit_lines(
    roles: Roles,
    customer: str,
    by_rate: Mapping[Decimal, int],
    currency: str,
    *,
    prefix: str,
    taxes: Mapping[Decimal, int] | None = None,
) -> tuple[LineDraft, ...]:
    """A credit note (prefix REV) or goodwill (prefix RED): Dr net and VAT per rate / Cr AR (customer) gross.
    `taxes` (from credit_tax) overrides the VAT of each rate; by default it is extracted from the gross."""
    lines = _per_rate(roles, prefix, by_rate, currency, Side.DEBIT, taxes)
    lines.append(LineDraft(roles("AR"), Side.CREDIT, sum(by_rate.values()), currency, customer))
    return tuple(lines)


def _per_rate(
    roles: Roles,
    prefix: str,
    by_rate: Mapping[Decimal, int],
    currency: str,
    side: Side,
    taxes: Mapping[Decimal, int] | None = None,
) -> list[LineDraft]:
    lines = []
    for rate, gross in by_rate.items():
        tax = taxes[rate] if taxes is not None else vat_from_gross(gross, rate)
        if gross - tax:
            lines.append(LineDraft(roles.per_rate(prefix, rate), side, gross - tax, currency))
        if tax:
            lines.append(LineDraft(roles.per_rate("VAT", rate), side, tax, currency))
    return lines


def transfer_lines(
    debit: Account, credit: Account, amount: int, currency: str, *, customer: str | None = None
) -> tuple[LineDraft, ...]:
    """Money between two accounts; the customer goes on whichever side is the customer ledger."""
    return (
        LineDraft(debit, Side.DEBIT, amount, currency, customer if debit.customer_ledger else None),
        LineDraft(credit, Side.CREDIT, amount, currency, customer if credit.customer_ledger else None),
    )


def split_by_rate(gross: int, open_by_rate: Mapping[Decimal, int]) -> dict[Decimal, int]:
    """Split a gross amount across VAT rates pro rata to what is open per rate (largest remainder)."""
    rates = [r for r, amount in open_by_rate.items() if amount > 0]
    if not rates:
        raise Unprocessable("nothing_open", "nothing invoiced remains to credit")
    if gross > sum(open_by_rate[r] for r in rates):
        raise Unprocessable(
            "credit_exceeds_invoiced",
            "the amount exceeds what was invoiced and not yet credited",
            [FieldError("gross_amount", "larger than the order's open invoiced amount")],
        )
    parts = allocate(gross, [open_by_rate[r] for r in rates])
    return {rate: part for rate, part in zip(rates, parts, strict=True) if part}


@dataclass(frozen=True, slots=True)
class OrderMoney:
    """What happened to an order's money, in minor units (from the order's documents and Amazon mirror)."""

    invoiced: int  # invoices
    credited: int  # credit notes and goodwills
    paid: int  # completed captures + bank payments - chargebacks
    refunded: int  # refunds requested (pending or completed), not declined
    prepaid_open: int  # one-step orders: gross of items paid for but not yet invoiced or cancelled


def refundable(money: OrderMoney, credit: int) -> int:
    """How much of a new credit goes back to the customer; the rest is offset against what is open.

    Refund only what the customer paid beyond what they owe after the credit (and beyond the items they
    paid for in advance and will still receive).
    """
    excess = money.paid - money.refunded - (money.invoiced - money.credited - credit) - money.prepaid_open
    return max(0, min(credit, excess))


@dataclass(frozen=True, slots=True)
class ChargeRoom:
    """A captured charge and what was already taken back from it."""

    charge_id: str
    captured: int
    refunds: int
    refund_count: int
    chargebacks: int


def amazon_allowance(amount: int, currency: str) -> int:
    """What Amazon allows above an amount: min(15 %, 75 USD/GBP/EUR or 8,400 JPY) (refund.html, charge-permission.html)."""
    return min(amount * 15 // 100, _ALLOWANCE_UNITS.get(currency, 75) * minor_per_unit(currency))


def refund_headroom(room: ChargeRoom, currency: str) -> int:
    """Amazon: refunds (with chargebacks) of a charge stay within captured + amazon_allowance, at most 10 refunds."""
    if room.refund_count >= REFUNDS_PER_CHARGE_MAX:
        return 0
    return max(0, room.captured + amazon_allowance(room.captured, currency) - room.refunds - room.chargebacks)


def plan_refund(amount: int, rooms: Sequence[ChargeRoom], currency: str) -> list[tuple[str, int]]:
    """Spread a refund over the order's charges, largest headroom first; refuse beyond Amazon's limits."""
    plan: list[tuple[str, int]] = []
    left = amount
    if left <= 0:
        return plan
    for room in sorted(rooms, key=lambda r: (-refund_headroom(r, currency), r.charge_id)):
        take = min(left, refund_headroom(room, currency))
        if take > 0:
            plan.append((room.charge_id, take))
            left -= take
        if left == 0:
            return plan
    raise Unprocessable(
        "refund_limit_exceeded",
        "the refund exceeds Amazon Pay's limit: refunds and chargebacks of a charge stay within the captured "
        "amount plus min(15 %, 75 EUR/GBP/USD or 8,400 JPY) and at most 10 refunds per charge",
    )
