"""What a dunning run decides for one customer (dunning.decide; docs/accounting.md, "Dunning"): pure, no database.

The simulation below books a decision the way dunning.runs and dunning.store do (a notice's charges become a
`charges` event on the receivable, its level and interest go to the state; a reset clears the state), so runs
of many days can be played without PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec import structs

from dunning.decide import Decision, RunContext, State, current_cycle, decide, notice_content, notice_items_key
from dunning.items import Event, open_items
from dunning.policy import Level, Policy

DAY0 = date(2026, 1, 5)
RATES = [(date(2020, 1, 1), Decimal(2))]  # the worked example's base rate: 2 % (+ 5 points = 7 % for consumers)
NOBODY = RunContext(paused_orders={}, disputed=set(), business_customers=set())


def day(n: int) -> date:
    return DAY0 + timedelta(days=n)


def policy(**changes: object) -> Policy:
    """The worked example's policy: reminder 1 day overdue, 1.00 after 29 more days, 1.50 after 14, then write-off."""
    example = Policy(
        enabled=True,
        threshold_minor=0,
        levels=[
            Level(days=1, payment_term_days=14, fee_minor=0),
            Level(days=29, payment_term_days=14, fee_minor=100),
            Level(days=14, payment_term_days=14, fee_minor=150),
        ],
        interest=True,
        consumer_points=Decimal(5),
        business_points=Decimal(9),
        flat_fee_minor=4000,
        after_final="write_off",
        after_final_days=36,
        write_off_days=60,
        underpayment_minor=0,
    )
    return structs.replace(example, **changes)


@dataclass
class Customer:
    """One customer's receivable and dunning state, booked as dunning.runs books a decision."""

    events: list[Event] = field(default_factory=list)
    state: State = field(default_factory=State)
    decisions: list[tuple[date, Decision]] = field(default_factory=list)

    def add(self, on: date, amount: int, kind: str, order: str | None = None, due: date | None = None) -> None:
        self.events.append(Event(on, len(self.events) + 1, amount, kind, order, due))

    def run(
        self, on: date, pol: Policy, ctx: RunContext = NOBODY, rates: list[tuple[date, Decimal]] = RATES
    ) -> Decision:
        booked = sorted((e for e in self.events if e.on <= on), key=lambda e: (e.on, e.entry_id))  # journal order
        items = open_items(booked)
        d = decide("c1", items, self.state, pol, ctx, rates, on)
        self.decisions.append((on, d))
        if d.action == "notice":  # dunning.store.advance_states and the charges entry of dunning.runs
            charges = d.fee + d.flat_fee
            if charges + d.interest_increment:
                self.events.append(
                    Event(on, len(self.events) + 1, charges + d.interest_increment, "charges", fee=charges)
                )
            self.state = replace(
                self.state,
                level=d.level,
                last_notice_on=on,
                cycle_started_on=d.cycle_started_on,
                default_on=d.default_on,
                interest_minor=d.interest_increment + (0 if d.level == 1 else self.state.interest_minor),
                flat_fee_booked=d.flat_fee > 0 or (d.level > 1 and self.state.flat_fee_booked),
            )
        elif d.action == "write_off":
            taken = sum(b.open for b in d.overdue if b.open > 0) + items.costs + items.interest
            self.add(on, -taken, "write_off")
            self.state = State()
        elif d.action == "reset":
            self.state = State()
        elif d.action == "collection":
            self.state = replace(self.state, collection_status=90)
        return d

    def notices(self) -> list[tuple[date, Decision]]:
        return [(on, d) for on, d in self.decisions if d.action == "notice"]


# --- the worked example ---------------------------------------------------------------------------------
def test_the_worked_example_day_by_day() -> None:
    """A chargeback of 71.40 on day 40: reminder day 41, 1st notice day 70 (1.00 + 0.21 interest), 2nd notice
    day 84 (1.50 + 0.19 more), written off day 120 (docs/accounting.md, the worked example)."""
    c = Customer()
    c.add(day(40), 7140, "claim", "o1", day(40))
    done = {n: c.run(day(n), policy()) for n in range(40, 125)}
    notices = [(on, d.level, d.fee, d.interest_total, d.interest_increment) for on, d in c.notices()]
    assert notices == [(day(41), 1, 0, 0, 0), (day(70), 2, 100, 21, 21), (day(84), 3, 150, 40, 19)]
    first = c.notices()[0][1]
    assert (first.pay_by, first.default_on, first.cycle_started_on) == (day(55), day(56), day(41))
    assert {n: d.action for n, d in done.items() if d.action not in ("none", "notice")} == {120: "write_off"}
    assert (done[120].reason, done[120].amount) == ("dunning without success", 7140 + 100 + 150 + 40)


def test_notice_content_adds_up_to_what_the_notice_asks_for() -> None:
    c = Customer()
    c.add(day(40), 7140, "claim", "o1", day(40))
    for n in range(40, 85):
        c.run(day(n), policy())
    on, third = c.notices()[-1]
    content = notice_content(third, "EUR", on)
    assert (content["total"], third.total) == ("74.30", 7430)  # 71.40 + 1.00 + 1.50 + 0.40 interest
    assert (content["principal"], content["costs"], content["interest"]) == ("71.40", "2.50", "0.40")
    assert (content["pay_by"], content["default_on"], content["final"]) == (day(98).isoformat(), "2026-03-02", True)
    assert (content["interest_points"], content["base_rate"]) == ("5", "2")
    assert notice_items_key(third) == f"{day(41)}:o1"


# --- what stops or replaces a notice -----------------------------------------------------------------------
def overdue_customer(amount: int = 7140) -> tuple[Customer, date]:
    c = Customer()
    c.add(day(0), amount, "claim", "o1", day(0))
    return c, day(1)  # level 1 is due on day 1


@pytest.mark.parametrize(
    ("state", "ctx", "reason"),
    [
        (State(collection_status=90), NOBODY, "in collection (status 90)"),
        (State(collection_status=97), NOBODY, "in collection (status 97)"),
        (State(), RunContext(paused_orders={}, disputed={"c1"}, business_customers=set()), "open dispute"),
        (State(paused_until=day(1), pause_reason="talking"), NOBODY, "paused: talking"),
        (State(), RunContext(paused_orders={"c1": {"o1"}}, disputed=set(), business_customers=set()), "items paused"),
    ],
)
def test_skipped_with_the_reason(state: State, ctx: RunContext, reason: str) -> None:
    c, on = overdue_customer()
    c.state = state
    d = c.run(on, policy(), ctx)
    assert (d.action, d.reason) == ("skip", reason)


def test_collection_closed_98_or_99_does_not_block() -> None:
    c, on = overdue_customer()
    c.state = State(collection_status=98)
    assert c.run(on, policy()).action == "notice"


def test_more_than_one_booking_line_holds_is_left_to_a_person() -> None:
    c, on = overdue_customer(10**15 + 1)
    d = c.run(on, policy())
    assert (d.action, d.reason) == (
        "skip",
        "owes more than one booking line can hold (10^15 minor units): handle by hand",
    )


def test_an_underpayment_is_written_off_at_once() -> None:
    c, on = overdue_customer(50)
    d = c.run(on, policy(underpayment_minor=50))
    assert (d.action, d.reason, d.amount) == ("write_off", "underpayment", 50)
    c, on = overdue_customer(50)
    assert c.run(on, policy(underpayment_minor=49)).action == "notice"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [({"enabled": False}, "dunning off"), ({"threshold_minor": 7141}, "below the dunning threshold")],
)
def test_not_dunned_is_written_off_after_write_off_days(changes: dict[str, object], reason: str) -> None:
    c, _ = overdue_customer()
    pol = policy(**changes)
    assert [c.run(day(n), pol).action for n in (1, 59)] == ["none", "none"]
    d = c.run(day(60), pol)
    assert (d.action, d.reason) == ("write_off", reason)


def test_after_the_final_level_the_debt_goes_to_collection() -> None:
    c, _ = overdue_customer()
    pol = policy(after_final="collection", after_final_days=10)
    actions = {n: c.run(day(n), pol).action for n in range(1, 100)}
    last_notice = c.notices()[-1][0]
    assert c.notices()[-1][1].final
    assert [n for n, a in actions.items() if a == "collection"] == [(last_notice - DAY0).days + 10]
    assert c.run(day(100), pol).reason == "in collection (status 90)"


def test_a_cycle_with_nothing_overdue_is_reset() -> None:
    c, on = overdue_customer()
    c.run(on, policy())
    c.add(day(3), -7140, "payment")
    assert c.run(day(2), policy()).action == "none"  # still overdue, reminder sent yesterday
    assert c.run(day(3), policy()).action == "reset"
    assert c.run(day(4), policy()).action == "none"  # nothing stored to reset any more


def test_never_two_notices_a_day_even_when_the_next_level_is_due_at_once() -> None:
    """A policy stored with a later level 0 days after the previous notice (the API asks for 1 or more) still
    waits for the next day."""
    c, on = overdue_customer()
    pol = policy(
        levels=[Level(days=1, payment_term_days=14, fee_minor=0), Level(days=0, payment_term_days=14, fee_minor=0)]
    )
    assert [c.run(on, pol).level for _ in range(2)] == [1, 0]
    assert c.run(on + timedelta(days=1), pol).level == 2


def test_business_customers_pay_9_points_and_the_flat_fee_once() -> None:
    c = Customer()
    c.add(day(40), 7140, "claim", "o1", day(40))
    b2b = RunContext(paused_orders={}, disputed=set(), business_customers={"c1"})
    for n in range(40, 100):
        c.run(day(n), policy(), b2b)
    fees = [(d.level, d.flat_fee, d.interest_points) for _, d in c.notices()]
    assert fees == [(1, 0, None), (2, 4000, Decimal(9)), (3, 0, Decimal(9))]


# --- properties ---------------------------------------------------------------------------------------------
levels = st.lists(
    st.builds(Level, days=st.integers(1, 40), payment_term_days=st.integers(1, 30), fee_minor=st.integers(0, 500)),
    min_size=1,
    max_size=4,
    # the policy's rule: the payment reminder is free
).map(lambda lv: [structs.replace(lv[0], fee_minor=0), *lv[1:]])
policies = st.builds(
    policy,
    levels=levels,
    after_final=st.sampled_from(["collection", "write_off"]),
    after_final_days=st.integers(0, 60),
    interest=st.booleans(),
)


@given(
    pol=policies,
    amount=st.integers(1, 10**9),
    run_days=st.sets(st.integers(0, 400), min_size=1, max_size=120),
    payments=st.lists(st.tuples(st.integers(0, 400), st.integers(1, 10**6)), max_size=5),
    business=st.booleans(),
)
def test_levels_never_skip_and_come_at_most_once_a_day(
    pol: Policy, amount: int, run_days: set[int], payments: list[tuple[int, int]], business: bool
) -> None:
    """Whatever days the runs happen on and whatever part-payments arrive, notices climb one level at a time,
    each when its level is due, and only the final level's wait leads to collection or a write-off."""
    c = Customer()
    c.add(day(0), amount, "claim", "o1", day(0))
    paid = 0
    for on, part in sorted(payments):
        if paid + part < amount:  # never the whole claim: the cycle goes on
            c.add(day(on), -part, "payment")
            paid += part
    ctx = RunContext(paused_orders={}, disputed=set(), business_customers={"c1"} if business else set())
    for n in sorted(run_days):
        c.run(day(n), pol, ctx)
    notices = c.notices()
    assert [d.level for _, d in notices] == list(range(1, len(notices) + 1))
    assert len(notices) <= len(pol.levels)
    before = day(0)  # level 1 counts from the due date, later levels from the previous notice
    for on, d in notices:
        assert on >= before + timedelta(days=pol.levels[d.level - 1].days)
        before = on
        assert d.final == (d.level == len(pol.levels))
        assert d.fee == (pol.levels[d.level - 1].fee_minor if d.level > 1 else 0)
    ends = [(on, d) for on, d in c.decisions if d.action in ("collection", "write_off")]
    assert len(ends) <= 1
    if ends:
        assert len(notices) == len(pol.levels)
        assert ends[0][0] >= notices[-1][0] + timedelta(days=pol.after_final_days)
        assert all(on < ends[0][0] for on, _ in notices)
        assert (ends[0][1].action == "collection") == (pol.after_final == "collection")
    assert len([d for _, d in notices if d.flat_fee]) <= (1 if business else 0)  # once per cycle, B2B only


@given(
    pol=policies,
    amount=st.integers(1, 10**9),
    reached=st.integers(1, 4),
    paid_after=st.integers(0, 30),
    new_amount=st.integers(1, 10**9),
    gap=st.integers(0, 60),
    business=st.booleans(),
)
def test_a_paid_up_customer_starts_again_at_level_1(
    pol: Policy, amount: int, reached: int, paid_after: int, new_amount: int, gap: int, business: bool
) -> None:
    """Paying everything the notices asked for ends the cycle even when no run saw the account balanced: the next
    overdue claim gets the free reminder (level 1) with a new default date, and no interest booked before counts."""
    c = Customer()
    c.add(day(0), amount, "claim", "o1", day(0))
    ctx = RunContext(paused_orders={}, disputed=set(), business_customers={"c1"} if business else set())
    n = 0
    while len(c.notices()) < min(reached, len(pol.levels)):
        n += 1
        c.run(day(n), pol, ctx)
    last = c.notices()[-1][0]
    owed = open_items(c.events).total
    c.add(last + timedelta(days=paid_after), -owed, "payment")
    due = last + timedelta(days=paid_after + gap)
    c.add(due, new_amount, "claim", "o2", due)
    stored = c.state
    on = due + timedelta(days=pol.levels[0].days)
    assert current_cycle(stored, open_items(c.events)).level == 0
    d = c.run(on, pol, ctx)  # the first run since the payment
    assert (d.action, d.level, d.fee, d.flat_fee) == ("notice", 1, 0, 0)
    assert d.cycle_started_on == on
    assert d.default_on == on + timedelta(days=pol.levels[0].payment_term_days + 1)
    assert [b.key for b in d.overdue] == ["o2"]
    assert d.interest_increment == d.interest_total == 0  # not in default yet


def exact_interest(
    amount: int, payments: dict[date, int], due: date, default_on: date, through: date, points: Decimal, rates: list
) -> int:
    """§288 BGB by the book, independently of dunning.items: every day from the default date (or the day after the
    due date) through `through`, the open principal that day x (base rate that day + points) / 100 / 365,
    summed exactly and rounded half-up once."""
    total = Fraction(0)
    t = max(default_on, due + timedelta(days=1))
    while t <= through:
        open_ = amount - sum(p for on, p in payments.items() if on <= t)
        base = Decimal(0)
        for valid_from, rate in rates:
            if valid_from <= t:
                base = rate
        total += Fraction(max(open_, 0)) * Fraction(base + points) / 100 / 365
        t += timedelta(days=1)
    return int(total + Fraction(1, 2)) if total > 0 else 0


rate_tables = st.lists(
    st.tuples(st.integers(0, 24), st.integers(-3000, 12000)),  # (months after DAY0's month, rate in 1/1000 %)
    min_size=1,
    max_size=5,
    unique_by=lambda r: r[0],
).map(lambda rs: sorted((date(2025 + (m + 9) // 12, (m + 9) % 12 + 1, 1), Decimal(r) / 1000) for m, r in rs))


@given(
    amount=st.integers(1, 10**12),
    rates=rate_tables,
    business=st.booleans(),
    default_after=st.integers(-20, 60),  # default date relative to the due date
    length=st.integers(0, 400),
    payments=st.dictionaries(st.integers(0, 400), st.integers(1, 10**11), max_size=4),
    booked=st.integers(0, 10**6),
)
def test_interest_is_288_bgb_exact_to_the_cent(
    amount: int,
    rates: list[tuple[date, Decimal]],
    business: bool,
    default_after: int,
    length: int,
    payments: dict[int, int],
    booked: int,
) -> None:
    """The notice's interest: base rate of each day + 5 points (consumers) or 9 (businesses), act/365, on the open
    principal, rounded half-up once; the notice books only the increase over what was booked before."""
    due = date(2026, 2, 1)
    default_on = due + timedelta(days=default_after)
    through = max(default_on, due + timedelta(days=1)) + timedelta(days=length)
    c = Customer()
    c.add(due, amount, "claim", "o1", due)
    left, paid_on = amount - 1, {}  # something stays open, so the notice is due
    for offset, part in sorted(payments.items()):
        on = due + timedelta(days=offset)
        if on <= through and part <= left:
            c.add(on, -part, "payment")
            paid_on[on] = paid_on.get(on, 0) + part
            left -= part
    c.state = State(level=1, last_notice_on=through - timedelta(days=1), cycle_started_on=due, default_on=default_on)
    c.state = replace(c.state, interest_minor=booked)
    ctx = RunContext(paused_orders={}, disputed=set(), business_customers={"c1"} if business else set())
    pol = policy(
        levels=[Level(days=1, payment_term_days=14, fee_minor=0), Level(days=1, payment_term_days=14, fee_minor=0)]
    )
    d = c.run(through, pol, ctx, rates)
    points = Decimal(9) if business else Decimal(5)
    assert (d.action, d.level) == ("notice", 2)
    assert d.interest_total == exact_interest(amount, paid_on, due, default_on, through, points, rates)
    assert d.interest_increment == max(0, d.interest_total - booked)
    assert d.interest_points == points
