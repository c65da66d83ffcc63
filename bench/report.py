"""Turn raw benchmark results into the README's Performance table: workload, figure, baseline, ratio, target, pass."""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Coalescing", "Row", "p4_queries", "print_table", "rows_for"]


@dataclass(frozen=True)
class Row:
    workload: str
    figure: float | None
    unit: str
    baseline: float | None
    target: str
    passed: bool

    @property
    def ratio(self) -> float | None:
        if self.figure is None or not self.baseline:
            return None
        return self.figure / self.baseline

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": None if self.ratio is None else round(self.ratio, 3)}


_SAMPLE = re.compile(
    r'^(kontor_post_(?:batch_entries|queue_wait_seconds)_(?:bucket|sum|count))(?:\{le="([^"]+)"\})? (\S+)$'
)


@dataclass
class Coalescing:
    """The service's posting-coalescing histograms (ledger/metrics.py), summed over its workers."""

    samples: dict[tuple[str, str], float] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Coalescing:
        found: dict[tuple[str, str], float] = {}
        for line in text.splitlines():
            match = _SAMPLE.match(line)
            if match:
                key = (match.group(1), match.group(2) or "")
                found[key] = found.get(key, 0.0) + float(match.group(3))
        return cls(found)

    def minus(self, earlier: Coalescing) -> Coalescing:
        return Coalescing({k: v - earlier.samples.get(k, 0.0) for k, v in self.samples.items()})

    def summary(self) -> dict[str, Any]:
        """Commits, postings, mean postings per commit and mean wait, and how many commits carried up to n."""
        s = self.samples
        commits = s.get(("kontor_post_batch_entries_count", ""), 0.0)
        postings = s.get(("kontor_post_batch_entries_sum", ""), 0.0)
        wait = s.get(("kontor_post_queue_wait_seconds_sum", ""), 0.0)
        buckets = sorted(
            ((float(le), n) for (name, le), n in s.items() if name == "kontor_post_batch_entries_bucket"),
            key=lambda b: b[0],
        )
        distribution, below = {}, 0.0
        for le, cumulative in buckets:
            label = "more" if le == float("inf") else f"<={le:g}"
            distribution[label] = int(cumulative - below)
            below = cumulative
        return {
            "commits": int(commits),
            "postings": int(postings),
            "mean_batch": round(postings / commits, 2) if commits else None,
            "mean_wait_ms": round(wait * 1000 / postings, 2) if postings else None,
            "commits_by_batch_size": distribution,
        }


def _errors(result: dict[str, Any]) -> int:
    return sum(n for status, n in result.get("statuses", {}).items() if not status.startswith("2"))


def _throughput(
    name: str,
    result: dict[str, Any],
    baseline: dict[str, Any],
    *,
    unit: str,
    ratio_min: float,
    at_least: tuple[str, float] | None = None,
) -> Row:
    """A throughput beside its baseline: passes at `ratio_min` x the baseline (and at least `at_least`'s figure)."""
    rate, base = result["rate"], baseline["rate"]
    ok = _errors(result) == 0 and rate >= ratio_min * base
    target = f">= {ratio_min:g} x baseline"
    if at_least is not None:
        ok = ok and rate >= at_least[1]
        target += f" and >= {at_least[0]}"
    return Row(name, rate, unit, base, target, ok)


def _coalescing(name: str, stats: dict[str, Any] | None) -> Row:
    """Information, not a target: mean postings per commit (the distribution is in the JSON)."""
    stats = stats or {}
    return Row(name, stats.get("mean_batch"), "per commit", None, "(information)", True)


def _latency(name: str, result: dict[str, Any], baseline: dict[str, Any] | None, limit_ms: float) -> Row:
    p99 = result["p99_ms"]
    ok = p99 is not None and p99 <= limit_ms and _errors(result) == 0
    return Row(name, p99, "ms p99", None if baseline is None else baseline["p99_ms"], f"<= {limit_ms:g} ms", ok)


def rows_for(r: dict[str, Any]) -> list[Row]:
    rows = [
        _throughput("P1 HTTP postings, 100 merchants", r["P1"], r["P1_baseline"], unit="entries/s", ratio_min=1.0),
        _latency("P1 latency", r["P1"], r["P1_baseline"], 50),
        _throughput(
            "P2 HTTP postings, one hot merchant",
            r["P2"],
            r["P2_baseline"],
            unit="entries/s",
            ratio_min=1.5,
            at_least=("P1", r["P1"]["rate"]),
        ),
        _latency("P2 latency", r["P2"], r["P2_baseline"], 50),
        _coalescing("P1/P2 coalescing: P1 postings per commit", r.get("P1_coalescing")),
        _coalescing("P1/P2 coalescing: P2 postings per commit", r.get("P2_coalescing")),
        _throughput("P3 bulk endpoint (1,000 x 4 lines)", r["P3"], r["P3_baseline"], unit="lines/s", ratio_min=0.8),
    ]
    for name, limit in (("balance", 5), ("balance_as_of", 20), ("trial_balance", 100), ("register", 10)):
        rows.append(_latency(f"P4 {name.replace('_', ' ')}", r["P4"][name], r["P4_baseline"][name], limit))
    p5, p5_base = r["P5"], r["P5_baseline"]
    rows.append(
        Row(
            f"P5 settlement report ({p5['rows']:,} rows)",
            p5["seconds"],
            "s",
            p5_base["seconds"],
            "<= 10 s, every row matched",
            p5["status"] == 201 and p5["matched"] == p5["rows"] and p5["seconds"] <= 10,
        )
    )
    base6 = r["P6_baseline"]
    for key, what in (("P6_reminders", "reminders"), ("P6", "1st level: fee + interest")):
        p6 = r[key]
        rows.append(
            Row(
                f"P6 dunning run, {p6['customers']:,} debtors ({what})",
                p6["seconds"],
                "s",
                base6["seconds"],
                "<= 60 s, every debtor noticed",
                p6["status"] == 200 and p6["notices"] == p6["customers"] and p6["seconds"] <= 60,
            )
        )
    rows.append(
        Row(
            "P7 service RSS under P1 (largest process)",
            r["P7"]["max_process_mb"],
            "MB",
            None,
            "<= 300",
            r["P7"]["max_process_mb"] <= 300,
        )
    )
    return rows


def print_table(rows: list[Row]) -> None:
    header = f"{'workload':44} {'figure':>12} {'unit':10} {'baseline':>10} {'ratio':>7}  {'target':28} result"
    print(header)
    print("-" * len(header))
    for row in rows:
        figure = "-" if row.figure is None else f"{row.figure:,.1f}"
        base = "-" if row.baseline is None else f"{row.baseline:,.1f}"
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
        print(
            f"{row.workload:44} {figure:>12} {row.unit:10} {base:>10} {ratio:>7}  {row.target:28} "
            f"{'pass' if row.passed else 'FAIL'}"
        )


_BALANCE_SQL = (
    "SELECT currency, sum(debit_minor)::bigint, sum(credit_minor)::bigint FROM balance_totals "
    "WHERE merchant_id = $1 AND business = 1001 AND account_id = $2 GROUP BY currency"
)
_AS_OF_SQL = (
    "SELECT currency, sum(debit_minor)::bigint, sum(credit_minor)::bigint FROM balance_totals "
    "WHERE merchant_id = $1 AND business = 1001 AND account_id = $2 AND day <= $3::text::date GROUP BY currency"
)
_TRIAL_SQL = (
    "SELECT account_id, currency, sum(debit_minor)::bigint, sum(credit_minor)::bigint FROM balance_totals "
    "WHERE merchant_id = $1 AND business = 1001 GROUP BY account_id, currency"
)
_REGISTER_SQL = (
    "SELECT l.effective_date, l.entry_id, l.line_no, l.side, l.amount_minor, l.customer, e.description, e.reference "
    "FROM lines l JOIN entries e USING (merchant_id, business, entry_id) WHERE l.merchant_id = $1 AND l.business = 1001 "
    "AND l.account_id = $2 AND l.currency = 'EUR' AND (l.effective_date, l.entry_id, l.line_no) >= ($3::text::date, 0, 0) "
    "ORDER BY l.effective_date, l.entry_id, l.line_no LIMIT 101"
)


def p4_queries(
    merchant: int, accounts: dict[str, int], days: list[str]
) -> tuple[dict[str, list[str]], dict[str, list[Any]]]:
    """HTTP paths and the equivalent direct SQL (the service's own queries, without HTTP and Python)."""
    rng = random.Random(4)
    base = "/v1/businesses/1001"
    hot = ["8400", "1400", "1776", "8120"]
    some_days = [rng.choice(days) for _ in range(50)]
    http = {
        "balance": [f"{base}/accounts/{n}/balance" for n in hot],
        "balance_as_of": [f"{base}/accounts/{hot[i % 4]}/balance?as_of={d}" for i, d in enumerate(some_days)],
        "trial_balance": [f"{base}/reports/trial-balance"],
        "register": [f"{base}/accounts/{hot[i % 4]}/register?limit=100&from={d}" for i, d in enumerate(some_days)],
    }
    sql = {
        "balance": [[_BALANCE_SQL, [merchant, accounts[n]]] for n in hot],
        "balance_as_of": [[_AS_OF_SQL, [merchant, accounts[hot[i % 4]], d]] for i, d in enumerate(some_days)],
        "trial_balance": [[_TRIAL_SQL, [merchant]]],
        "register": [[_REGISTER_SQL, [merchant, accounts[hot[i % 4]], d]] for i, d in enumerate(some_days)],
    }
    return http, sql
