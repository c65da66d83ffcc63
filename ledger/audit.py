"""Who did it: the API key behind every entry and every accountant's action (the audit trail).

The key of the request being served is the *actor*, held in a context variable that the authentication
middleware (and the web pages, for a signed-in accountant) set for the duration of the request. Everything
the request books (entries posted directly, and the ones a use case posts for it: invoices, captures, ...)
records the actor's key id in `entries.posted_by`; work that no request caused (scheduled jobs, IPNs from
Amazon) has none. Actions that are not entries themselves (a reversal, a period close, a reconciliation
exception resolved or dismissed) are written to `audit_actions` with the actor and the reason given, in the
transaction of the action. Keys are never deleted (only revoked), so their names and roles stay readable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any

from msgspec import Struct

if TYPE_CHECKING:
    from ledger.db import Connection
    from ledger.tenancy import Principal

__all__ = [
    "ACTIONS_PAGE_MAX",
    "ActionOut",
    "PostedBy",
    "acting",
    "actor_key_id",
    "current_actor",
    "record_action",
]

ACTIONS_PAGE_MAX = 500
_actor: ContextVar[Principal | None] = ContextVar("kontor_actor", default=None)


class PostedBy(Struct, kw_only=True):
    """The API key that posted an entry or took an action (keys are never deleted, only revoked)."""

    key_id: int
    name: str
    role: str  # accountant | poster | admin


class ActionOut(Struct, kw_only=True):
    action_id: int
    at: datetime
    action: str  # entry.reversed | period.closed | exception.resolved | exception.dismissed
    subject: str  # what it acted on: an entry id, a month (YYYY-MM), an exception id
    reason: str | None
    details: dict[str, Any]
    by: PostedBy | None  # None: Kontor itself (a scheduled job, an IPN)


def current_actor() -> Principal | None:
    """The principal whose request is being served, or None (a scheduled job, an IPN)."""
    return _actor.get()


def actor_key_id() -> int | None:
    """The key id of the merchant key whose request is being served, or None (a job, the operator)."""
    actor = _actor.get()
    return actor.key_id if actor is not None else None


@contextmanager
def acting(actor: Principal | None) -> Iterator[None]:
    """Everything within (in this task and the tasks it starts) runs on behalf of `actor`."""
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


async def record_action(
    conn: Connection,
    merchant_id: int,
    business: int | None,
    action: str,
    subject: str,
    *,
    reason: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one action to the audit trail, in the caller's transaction, with the current actor."""
    await conn.execute(
        "INSERT INTO audit_actions (merchant_id, business, key_id, action, subject, reason, details) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)",
        merchant_id,
        business,
        actor_key_id(),
        action,
        subject,
        reason,
        details or {},
    )
