"""`Kontor`: what one process needs at run time, built by a composition root and passed down.

Holds the write pool, the reports pool (a replica if configured), the settings, the box that seals
stored secrets (ledger.secrets), the clock and small in-process caches of rows that never change once
written (business codes, accounts: both are never deleted and their keys are immutable, enforced in
schema.sql), so the posting path costs one round trip. API keys are cached for `key_cache_ttl_s` only,
so a revocation reaches every instance quickly.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

import asyncpg

from ledger.coalesce import Coalescer
from ledger.config import Settings
from ledger.domain import Account, Business, Horizon
from ledger.secrets import SecretBox

__all__ = [
    "AccountIndex",
    "Clock",
    "KeyRecord",
    "Kontor",
    "PeriodClosedHook",
    "PeriodClosingHook",
    "ReceivableHook",
    "ReversalGuard",
    "system_clock",
]

Clock = Callable[[], datetime]


class ReceivableHook(Protocol):
    """Called with the connection in the booking's transaction, the business code, the customer and the booking
    date; `designation` is the order a payment named (§366 (1) BGB), None when it named none."""

    def __call__(
        self, ctx: Kontor, conn: Any, business: Business, customer: str, on: date, *, designation: str | None = None
    ) -> Awaitable[None]: ...


# (ctx, connection in the closing transaction, business code, the months it closed now: 'YYYY-MM', oldest first)
PeriodClosedHook = Callable[["Kontor", Any, Business, list[str]], Awaitable[None]]
# (ctx, connection in the closing transaction, business code, first day of each month about to be closed)
PeriodClosingHook = Callable[["Kontor", Any, Business, list[date]], Awaitable[None]]
# (ctx, business code, the entry to be reversed: its id, metadata and order reference); raises a KontorError
# (409) when the entry is a document a plugin keeps state for that the generic reversal would put out of step
ReversalGuard = Callable[["Kontor", Business, int, dict[str, str], "str | None"], Awaitable[None]]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class AccountIndex:
    """A business code's accounts, by number, by id and by role key."""

    by_number: dict[str, Account]
    by_id: dict[int, Account]
    by_role: dict[str, Account]


@dataclass(frozen=True, slots=True)
class KeyRecord:
    secret_sha256: bytes
    role: str
    name: str
    revoked: bool
    fetched_at: float


@dataclass
class Kontor:
    pool: asyncpg.Pool
    reports_pool: asyncpg.Pool
    settings: Settings
    # seals and opens the secrets plugins store (Amazon Pay keys, webhook secrets): SecretBox.from_settings
    secrets: SecretBox
    clock: Clock = system_clock
    businesses: dict[tuple[int, int], Business] = field(default_factory=dict)
    accounts: dict[tuple[int, int], AccountIndex] = field(default_factory=dict)
    keys: dict[tuple[int, int], KeyRecord] = field(default_factory=dict)
    # called in the transaction of every booking on a customer's receivable, after it (plugins register
    # them at start: dunning recovers a written-off debt from a payment); ledger itself calls none
    receivable_hooks: list[ReceivableHook] = field(default_factory=list)
    # called in the transaction that closes months, with the months newly closed (none: no call), so that a
    # notification goes out exactly once however often and from wherever a month is closed
    period_closed_hooks: list[PeriodClosedHook] = field(default_factory=list)
    # called in the same transaction before the months are closed: period-end postings dated in them
    period_closing_hooks: list[PeriodClosingHook] = field(default_factory=list)
    # asked before the generic reversal (POST .../entries/{id}/reversal) posts anything: payments refuses an
    # order's documents and Amazon Pay's bookings, dunning its fees, write-offs and recoveries
    reversal_guards: list[ReversalGuard] = field(default_factory=list)
    # the process's queue of single-entry postings that share commits (ledger.journal creates it on first use)
    post_coalescer: Coalescer[Any, Any] | None = None

    def today(self) -> date:
        return self.clock().astimezone(UTC).date()

    def horizon(self) -> Horizon:
        """The latest effective date that may be booked now (KONTOR_POSTING_HORIZON_DAYS after today)."""
        return Horizon(self.today(), self.settings.posting_horizon_days)

    def key_is_fresh(self, record: KeyRecord) -> bool:
        return time.monotonic() - record.fetched_at < self.settings.key_cache_ttl_s

    def forget_accounts(self, merchant_id: int, business: int) -> None:
        self.accounts.pop((merchant_id, business), None)
