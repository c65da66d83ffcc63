"""R1: a hypothesis state machine drives the service through its API and compares it with an in-memory model.

Rules: manual postings (and refused unbalanced ones), reversals (a second one refused), one-step Amazon Pay orders
(captured at once), invoices, returns and goodwill credits (refunded through the simulator as far as paid),
chargebacks (a dispute read through Amazon's Dispute API after its IPN, lost) and write-offs (a dunning run with dunning off). Each order has its
own customer, so the model keeps one receivable per order.

Invariants, after every step (in SQL, cheap): every entry balances per currency; debits equal credits over the
merchant's journal; the manual accounts, PSP clearing and each customer's receivable equal the model; no
capture has more refunds than Amazon allows (captured + min(15 %, 75.00), at most 10). At the end of each example
the same figures are read through the API (balances, customer accounts, trial balance).

The machine runs in a worker thread and hands coroutines to the test's event loop, where the service, its pool
and the simulator run. The fast variant runs 10 examples of up to 20 steps; the slow one 200 of up to 50.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ledger.context import Kontor
from ledger.money import format_amount
from tests.conftest import Simulator, make_tenant
from tests.e2e.amazon import Shop, item, make_shop
from tests.e2e.test_orders import follow_refunds

T = TypeVar("T")
MANUAL = ("1200", "4970", "1590")  # accounts no business event of these rules touches
PSP, AR = "1210", "1400"
TODAY = date(2026, 11, 27)  # the test clock


def eur(minor: int) -> str:
    return format_amount(minor, "EUR")


@dataclass
class Order:
    ref: str
    customer: str
    items: list[tuple[int, int, int, str]]  # (item reference, gross unit minor, quantity, VAT rate)
    invoiced: bool = False
    returned: dict[int, int] = field(default_factory=dict)  # item -> quantity returned
    credited: int = 0  # gross of returns and goodwills
    refunded: int = 0
    charged_back: int = 0
    receivable: int = 0  # debit positive
    written_off: bool = False

    @property
    def gross(self) -> int:
        return sum(unit * qty for _, unit, qty, _ in self.items)

    @property
    def refundable(self) -> int:
        return self.gross - self.refunded - self.charged_back


@dataclass
class World:
    """What a machine needs from the test: the loop to run coroutines on, the pool, the simulator, the service."""

    loop: asyncio.AbstractEventLoop
    pool: asyncpg.Pool
    simulator: Simulator
    client: httpx.AsyncClient
    ctx: Kontor

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)


WORLD: World | None = None
amounts = st.integers(min_value=1, max_value=500_000)
# one VAT rate per order keeps "what is still open" one figure (mixed-rate splits: test_orders, test_dunning)
items = st.sampled_from(["19", "7"]).flatmap(
    lambda vat: st.lists(
        st.tuples(st.integers(min_value=100, max_value=50_000), st.integers(min_value=1, max_value=3), st.just(vat)),
        min_size=1,
        max_size=3,
    )
)


class Books(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        assert WORLD is not None
        self.w = WORLD
        self.manual: dict[str, int] = dict.fromkeys(MANUAL, 0)
        self.psp = 0
        self.entries: list[tuple[str, dict[str, int], bool]] = []  # (entry id, effect, reversed)
        self.orders: list[Order] = []
        self.runs = 0
        self.policy_set = False

    @initialize()
    def open_shop(self) -> None:
        async def shop() -> Shop:
            return await make_shop(await make_tenant(self.w.client), self.w.simulator)

        self.shop = self.w.run(shop())
        self.t = self.shop.tenant

    # --- manual postings and reversals ---------------------------------------------------------------------
    @rule(debit=st.sampled_from(MANUAL), credit=st.sampled_from(MANUAL), minor=amounts)
    def post(self, debit: str, credit: str, minor: int) -> None:
        lines = [{"account": debit, "debit": eur(minor)}, {"account": credit, "credit": eur(minor)}]
        r = self.w.run(self.t.post_entry(lines))
        assert r.status_code == 201, r.text
        effect = {debit: minor}
        effect[credit] = effect.get(credit, 0) - minor
        self.apply(effect, +1)
        self.entries.append((r.json()["id"], effect, False))

    @rule(minor=amounts, off=st.integers(min_value=1, max_value=99))
    def post_unbalanced(self, minor: int, off: int) -> None:
        lines = [{"account": "1200", "debit": eur(minor + off)}, {"account": "1590", "credit": eur(minor)}]
        r = self.w.run(self.t.post_entry(lines))
        assert (r.status_code, r.json()["code"]) == (422, "entry_unbalanced"), r.text

    @precondition(lambda self: self.entries)
    @rule(pick=st.integers(min_value=0))
    def reverse(self, pick: int) -> None:
        index = pick % len(self.entries)
        entry_id, effect, reversed_ = self.entries[index]
        r = self.w.run(self.t.post(f"/entries/{entry_id}/reversal", {}, key=self.t.poster_key))
        if reversed_:
            assert (r.status_code, r.json()["code"]) == (409, "entry_already_reversed"), r.text
            return
        assert r.status_code == 201, r.text
        self.apply(effect, -1)
        self.entries[index] = (entry_id, effect, True)

    def apply(self, effect: dict[str, int], sign: int) -> None:
        for account, minor in effect.items():
            self.manual[account] += sign * minor

    # --- orders --------------------------------------------------------------------------------------------
    @rule(lines=items)
    def order(self, lines: list[tuple[int, int, str]]) -> None:
        n = len(self.orders) + 1
        o = Order(f"o{n}", f"C-{n}", [(i + 1, unit, qty, vat) for i, (unit, qty, vat) in enumerate(lines)])
        self.shop.customer = o.customer
        body = [item(ref, eur(unit), vat=vat, quantity=qty) for ref, unit, qty, vat in o.items]
        r = self.w.run(self.shop.create_order(o.ref, body))
        assert r.status_code == 201, r.text
        assert [c["state"] for c in r.json()["charges"]] == ["Captured"], r.text
        self.psp += o.gross
        o.receivable -= o.gross  # prepaid: the customer is in credit until invoiced
        self.orders.append(o)

    def live(self, pick: int, *, invoiced: bool) -> Order | None:
        candidates = [o for o in self.orders if o.invoiced == invoiced and not o.written_off]
        return candidates[pick % len(candidates)] if candidates else None

    @precondition(lambda self: any(not o.invoiced for o in self.orders))
    @rule(pick=st.integers(min_value=0))
    def invoice(self, pick: int) -> None:
        o = self.live(pick, invoiced=False)
        if o is None:
            return
        self.shop.customer = o.customer
        r = self.w.run(self.shop.invoice(o.ref, f"I-{o.ref}", [ref for ref, *_ in o.items]))
        assert r.status_code == 201, r.text
        o.invoiced = True
        o.receivable += o.gross

    @precondition(lambda self: any(o.invoiced and not o.written_off for o in self.orders))
    @rule(pick=st.integers(min_value=0), which=st.integers(min_value=0), qty=st.integers(min_value=1, max_value=3))
    def return_item(self, pick: int, which: int, qty: int) -> None:
        o = self.live(pick, invoiced=True)
        if o is None:
            return
        ref, unit, bought, _ = o.items[which % len(o.items)]
        left = bought - o.returned.get(ref, 0)
        body = {
            "return_reference": f"R-{o.ref}-{secrets.token_hex(3)}",
            "return_date": "2026-11-25",
            "invoice_reference": f"I-{o.ref}",
            "reason": "CUSTOMER_RETURN",
            "items": [{"item_reference": ref, "quantity": qty}],
        }
        if self.credit(o, "returns", body, unit * qty, fits=qty <= left and unit * qty <= o.gross - o.credited):
            o.returned[ref] = o.returned.get(ref, 0) + qty  # only a booked return takes the items back

    @precondition(lambda self: any(o.invoiced and not o.written_off for o in self.orders))
    @rule(pick=st.integers(min_value=0), minor=st.integers(min_value=1, max_value=20_000))
    def goodwill(self, pick: int, minor: int) -> None:
        o = self.live(pick, invoiced=True)
        if o is None:
            return
        body = {
            "goodwill_reference": f"G-{o.ref}-{secrets.token_hex(3)}",
            "goodwill_date": "2026-11-25",
            "reason": "OTHER",
            "gross_amount": eur(minor),
        }
        self.credit(o, "goodwills", body, minor, fits=minor <= o.gross - o.credited)

    def credit(self, o: Order, kind: str, body: dict[str, Any], gross: int, *, fits: bool) -> bool:
        """A credit note: the receivable goes down by its gross; what was paid is refunded, the rest offset.
        True when it was booked."""
        self.shop.customer = o.customer
        before = self.journal_size()
        r = self.w.run(self.shop.document(o.ref, kind, body))
        if not fits:
            assert r.status_code == 422, r.text
            assert r.json()["code"] in ("return_exceeds_invoiced", "credit_exceeds_invoiced", "nothing_open"), r.text
            assert self.journal_size() == before, "a refused credit note booked something"
            return False
        if r.status_code == 422 and r.json()["code"] == "refund_limit_exceeded":
            assert self.journal_size() == before, "a refused credit note booked something"
            return False
        assert r.status_code == 201, r.text
        doc = r.json()
        refunded, offset = (int(doc[k].replace(".", "")) for k in ("refunded", "offset"))
        assert (int(doc["gross_amount"].replace(".", "")), refunded + offset) == (gross, gross), doc
        assert refunded <= o.refundable, ("refunded more than was paid", doc, o)
        o.credited += gross
        o.receivable -= gross
        if refunded:
            self.w.run(follow_refunds(self.shop, self.w.ctx))
            o.refunded += refunded
            o.receivable += refunded
            self.psp -= refunded
        return True

    @precondition(lambda self: any(o.invoiced and not o.written_off and o.refundable > 0 for o in self.orders))
    @rule(pick=st.integers(min_value=0), share=st.integers(min_value=1, max_value=100))
    def chargeback(self, pick: int, share: int) -> None:
        candidates = [o for o in self.orders if o.invoiced and not o.written_off and o.refundable > 0]
        o = candidates[pick % len(candidates)]
        minor = max(1, o.refundable * share // 100)
        self.shop.customer = o.customer
        self.w.run(self.lose_chargeback(o, minor))
        o.charged_back += minor
        o.receivable += minor
        self.psp -= minor

    async def lose_chargeback(self, o: Order, minor: int) -> None:
        """The buyer's bank charges back; Amazon's dispute is read by the CHARGEBACK IPN, then lost (BuyerWon)."""
        dispute = await self.shop.chargeback(o.ref, eur(minor))
        await self.shop.drain_ipns()
        known = {d["chargeback_id"]: d for d in (await self.t.get("/disputes", state="open")).json()}
        assert dispute["disputeId"] in known, "the chargeback IPN was not applied"
        await self.shop.resolve_dispute(dispute["disputeId"], "BuyerWon")
        await self.shop.drain_ipns()
        lost = {d["chargeback_id"] for d in (await self.t.get("/disputes", state="lost")).json()}
        assert dispute["disputeId"] in lost, "the dispute's resolution was not applied"

    @precondition(lambda self: any(o.receivable > 0 and not o.written_off for o in self.orders))
    @rule()
    def write_off(self) -> None:
        if not self.policy_set:
            policy = {"enabled": False, "write_off_days": 1, "levels": [{"days": 1}]}
            r = self.w.run(self.t.client.put(self.t.url("/dunning/policy"), json=policy, headers=self.t.headers()))
            assert r.status_code == 200, r.text
            self.policy_set = True
        self.runs += 1
        as_of = (TODAY + timedelta(days=30 + self.runs)).isoformat()
        r = self.w.run(self.t.post("/dunning/runs", {"as_of": as_of}, key=self.t.poster_key, idem=None))
        assert r.status_code == 200, r.text
        due = [o for o in self.orders if o.receivable > 0 and not o.written_off]
        assert r.json()["counts"].get("write_off", 0) == len(due), (r.json(), due)
        for o in due:
            o.receivable, o.written_off = 0, True

    # --- invariants ----------------------------------------------------------------------------------------
    def journal_size(self) -> int:
        count: int = self.w.run(
            self.w.pool.fetchval("SELECT count(*) FROM entries WHERE merchant_id = $1", self.t.merchant_id)
        )
        return count

    @invariant()
    def books_agree_with_the_model(self) -> None:
        if not hasattr(self, "t"):
            return
        rows = self.w.run(
            self.w.pool.fetch(
                "SELECT a.number, l.customer, sum(CASE l.side WHEN 'D' THEN l.amount_minor ELSE -l.amount_minor END) "
                "AS net FROM lines l JOIN accounts a USING (merchant_id, business, account_id) "
                "WHERE l.merchant_id = $1 GROUP BY a.number, l.customer",
                self.t.merchant_id,
            )
        )
        net = {(r["number"], r["customer"]): int(r["net"]) for r in rows}
        assert sum(net.values()) == 0, "debits and credits of the journal differ"
        for account, minor in self.manual.items():
            assert net.get((account, None), 0) == minor, (account, net.get((account, None)), minor)
        assert net.get((PSP, None), 0) == self.psp, ("PSP", net.get((PSP, None)), self.psp)
        for o in self.orders:
            assert net.get((AR, o.customer), 0) == o.receivable, (o.customer, net.get((AR, o.customer)), o)
        unbalanced = self.w.run(
            self.w.pool.fetchval(
                "SELECT count(*) FROM (SELECT 1 FROM lines WHERE merchant_id = $1 GROUP BY entry_id, currency "
                "HAVING sum(CASE side WHEN 'D' THEN amount_minor ELSE -amount_minor END) <> 0) x",
                self.t.merchant_id,
            )
        )
        assert unbalanced == 0, "an entry does not balance"
        beyond = self.w.run(
            self.w.pool.fetchval(
                "SELECT count(*) FROM amazon_charges c JOIN LATERAL (SELECT count(*) AS n, "
                "coalesce(sum(amount_minor), 0) AS total FROM amazon_refunds r WHERE r.merchant_id = c.merchant_id "
                "AND r.charge_id = c.charge_id AND r.state <> 'Declined') r ON true WHERE c.merchant_id = $1 "
                "AND (r.n > 10 OR r.total + c.chargebacks_minor > c.captured_minor "
                "+ least(c.captured_minor * 15 / 100, 7500))",
                self.t.merchant_id,
            )
        )
        assert beyond == 0, "a charge has more refunds than Amazon allows"

    def teardown(self) -> None:
        if hasattr(self, "t"):
            self.w.run(self.read_through_the_api())

    async def read_through_the_api(self) -> None:
        trial = (await self.t.get("/reports/trial-balance")).json()
        assert trial["balanced"] is True, trial
        for account, minor in [*self.manual.items(), (PSP, self.psp)]:
            b = (await self.t.get(f"/accounts/{account}/balance")).json()["balances"]
            shown = 0
            if b:
                shown = int(b[0]["balance"].replace(".", "")) * (-1 if b[0]["side"] == "CREDIT" else 1)
            assert shown == minor, (account, b, minor)
        for o in self.orders:
            account = (await self.t.get(f"/customers/{o.customer}/account")).json()
            side = "DEBIT" if o.receivable > 0 else "CREDIT" if o.receivable < 0 else "BALANCED"
            assert (account["state"], account["balance"]) == (side, eur(abs(o.receivable))), (account, o)


async def run_machine(
    pool: asyncpg.Pool,
    simulator: Simulator,
    app_client: httpx.AsyncClient,
    ctx: Kontor,
    examples: int,
    steps: int,
    *,
    shrink: bool = True,
) -> None:
    global WORLD  # noqa: PLW0603 - the machine class is instantiated by hypothesis, without arguments
    WORLD = World(asyncio.get_running_loop(), pool, simulator, app_client, ctx)
    try:
        config = settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            # shrinking a 50-step failure can take longer than CI allows; the fast variant shrinks
            phases=[Phase.explicit, Phase.generate, *([Phase.shrink] if shrink else [])],
        )
        await asyncio.to_thread(run_state_machine_as_test, Books, settings=config)
    finally:
        WORLD = None


async def test_the_books_follow_the_model(
    pool: asyncpg.Pool, simulator: Simulator, app_client: httpx.AsyncClient, ctx: Kontor
) -> None:
    await run_machine(pool, simulator, app_client, ctx, examples=10, steps=20)


@pytest.mark.slow
@pytest.mark.timeout(1500)
async def test_the_books_follow_the_model_200_examples_of_50_steps(
    pool: asyncpg.Pool, simulator: Simulator, app_client: httpx.AsyncClient, ctx: Kontor
) -> None:
    await run_machine(pool, simulator, app_client, ctx, examples=200, steps=50, shrink=False)
