"""The ledger as the other packages use it: post an entry inside their own transaction, read a customer's
balance, find the accounts by role, run the receivable hooks after a booking on a customer's account.

One owner per query: the SQL of entries, lines and accounts stays in the ledger (ledger.journal, ledger.tenancy
and this module); payments, dunning and desk call these functions instead of repeating it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from ledger import journal
from ledger.charts import rate_key
from ledger.context import Kontor
from ledger.domain import Account, Business, EntryDraft, LineDraft, check_balanced
from ledger.errors import Unprocessable
from ledger.tenancy import account_index

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["Roles", "accounts_by_role", "book", "customer_balance", "run_receivable_hooks"]


async def book(
    ctx: Kontor,
    conn: Connection,
    business: Business,
    lines: Sequence[LineDraft],
    *,
    on: date,
    description: str,
    reference: str,
    metadata: dict[str, str],
    order_reference: str | None = None,
) -> int:
    """Post one balanced entry inside the caller's transaction (`conn` is in one); returns the entry's id.

    `reference` is the entry's document number (an invoice, credit note, goodwill or payment number, else what
    identifies the booking), `order_reference` the order it belongs to (ledger.domain.EntryDraft); `description`
    is cut at 500 characters. Raises Unprocessable when the lines do not balance or a month is closed
    (ledger.journal.post_entries)."""
    draft = EntryDraft(
        effective_date=on,
        description=description[:500],
        lines=tuple(lines),
        reference=reference,
        metadata=metadata,
        order_reference=order_reference,
    )
    check_balanced(draft.lines)
    posted = await journal.post_entries(ctx, business, [draft], idem_key=None, request_sha256=bytes(32), conn=conn)
    return posted.entries[0].id


async def customer_balance(conn: Connection, business: Business, customer: str) -> int:
    """The customer's balance over all accounts, in the business code's currency, in minor units, signed:
    positive when the customer owes (debit), negative when the customer is in credit (a prepayment or an
    overpayment). Read on `conn`, so inside a transaction it includes what that transaction posted."""
    net = await conn.fetchval(
        "SELECT COALESCE(sum(CASE side WHEN 'D' THEN amount_minor ELSE -amount_minor END), 0)::bigint FROM lines "
        "WHERE merchant_id = $1 AND business = $2 AND customer = $3 AND currency = $4",
        business.merchant_id,
        business.code,
        customer,
        business.currency,
    )
    return int(net)


class Roles:
    """A business code's accounts by role key (AR, PSP, BANK, REV_19, ...), refusing clearly when a role is not
    in its chart (422 `account_role_missing`)."""

    def __init__(self, by_role: Mapping[str, Account]) -> None:
        self._by_role = by_role

    def __call__(self, role: str) -> Account:
        account = self._by_role.get(role)
        if account is None:
            raise Unprocessable(
                "account_role_missing",
                f"the chart of accounts has no account with role {role}; "
                "add one (POST .../accounts) or use a VAT rate of this business code",
            )
        return account

    def per_rate(self, prefix: str, rate: Decimal) -> Account:
        """The account of role `<prefix>_<rate>` (REV_19, VAT_7, RED_5_5, ...)."""
        return self(f"{prefix}_{rate_key(rate)}")


async def accounts_by_role(ctx: Kontor, business: Business) -> Roles:
    """The business code's accounts by role (from the account cache, ledger.tenancy.account_index)."""
    return Roles((await account_index(ctx, business)).by_role)


async def run_receivable_hooks(
    ctx: Kontor, conn: Connection, business: Business, customer: str, *, on: date, designation: str | None = None
) -> None:
    """After a booking on a customer's account, inside its transaction: the plugins' receivable hooks run
    (ledger.context.Kontor.receivable_hooks; dunning recovers written-off debt from a customer now in credit,
    first that of the order a payment names: `designation`, §366 (1) BGB)."""
    for hook in ctx.receivable_hooks:
        await hook(ctx, conn, business, customer, on, designation=designation)
