"""`kontor report`, `kontor export csv`, `kontor period close` as real processes, against the running test
service (--url, --key) and directly against its database; what they print equals what the API says."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
from typing import Any

import asyncpg
import pytest

from tests.conftest import SECRET_KEY, Tenant

pytestmark = pytest.mark.timeout(300)  # a safety net for CLI processes on a loaded machine, not a speed check
TITLES = {"Trial balance", "Balance sheet", "Income statement", "Customer account C-1", "Open items of customer C-1",
          "Register of 1400 Receivables (customer accounts)"}  # fmt: skip


async def kontor(*args: str, database_url: str | None = None) -> tuple[int, str, str]:
    """Run the CLI without blocking the event loop the test service runs on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONTOR_")}
    if database_url:
        env["KONTOR_DATABASE_URL"] = database_url
    env["KONTOR_LOG_LEVEL"] = "WARNING"
    env["KONTOR_SECRET_KEY"] = SECRET_KEY  # the test service's key, not a key file in the user's data dir
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ledger.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def books(tenant: Tenant) -> Tenant:
    for i in range(3):
        await tenant.sale(f"C-{i}", "119.00", "100.00", "19.00", date=f"2026-10-1{i}")
    paid = await tenant.post_entry(
        [{"account": "1200", "debit": "119.00"}, {"account": "1400", "customer": "C-0", "credit": "119.00"}],
        date="2026-11-02",
    )
    assert paid.status_code == 201
    return tenant


def over_api(t: Tenant, url: str) -> list[str]:
    return ["--business", str(t.business), "--url", url, "--key", t.accountant_key]


def in_db(t: Tenant) -> list[str]:
    return ["--business", str(t.business), "--merchant", str(t.merchant_id)]


async def test_reports_equal_the_api_over_http_and_from_the_database(
    books: Tenant, app_url: str, database_url: str
) -> None:
    t = books
    cases: list[tuple[list[str], str, dict[str, str]]] = [
        (["trial-balance", "--as-of", "2026-11-30"], "/reports/trial-balance", {"as_of": "2026-11-30"}),
        (["balance-sheet", "--as-of", "2026-11-30"], "/reports/balance-sheet", {"as_of": "2026-11-30"}),
        (["income-statement", "--from", "2026-10-01", "--to", "2026-10-31"], "/reports/income-statement",
         {"from": "2026-10-01", "to": "2026-10-31"}),
        (["customer-account", "--customer", "C-1"], "/customers/C-1/account", {}),
        (["open-items", "--customer", "C-1", "--as-of", "2026-11-27"], "/customers/C-1/open-items",
         {"as_of": "2026-11-27"}),
        (["register", "--account", "1400"], "/accounts/1400/register", {"limit": "500"}),
    ]  # fmt: skip
    for args, path, params in cases:
        expected = (await t.get(path, key=t.accountant_key, **params)).json()
        for where in (over_api(t, app_url), in_db(t)):
            code, out, err = await kontor("report", *args, *where, "--format", "json", database_url=database_url)
            assert code == 0, (args, err)
            assert json.loads(out) == expected, (args, where)
        code, out, err = await kontor("report", *args, *over_api(t, app_url))  # the table
        assert code == 0, (args, err)
        assert out.splitlines()[0].split(",")[0] in TITLES, out


async def test_the_table_is_aligned_and_csv_reads_back(books: Tenant, app_url: str) -> None:
    code, out, err = await kontor("report", "trial-balance", "--as-of", "2026-11-30", *over_api(books, app_url))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"Trial balance, business {books.business}, as of 2026-11-30"
    body = [line for line in lines[2:] if line and not line.startswith("-")]
    assert len({len(line) for line in body if line[0].isdigit() or line.startswith("Total")}) == 1, "amounts align"
    assert "Total" in out
    assert "357.00" in out
    assert lines[-1] == "Debits equal credits."
    code, out, _ = await kontor("report", "trial-balance", "--format", "csv", *over_api(books, app_url))
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["Account"]: (r["Debit"], r["Credit"]) for r in rows}["1400"] == ("238.00", "0.00")  # net


async def test_the_register_reads_every_page(tenant: Tenant, app_url: str, database_url: str) -> None:
    entries = [
        {"effective_date": "2026-11-03", "description": f"cash sale {i}",
         "lines": [{"account": "1200", "debit": "1.00"}, {"account": "8400", "credit": "1.00"}]}
        for i in range(600)
    ]  # fmt: skip
    r = await tenant.post("/entries/batch", {"entries": entries}, key=tenant.poster_key)
    assert r.status_code == 201, r.text
    for where in (over_api(tenant, app_url), in_db(tenant)):
        code, out, err = await kontor("report", "register", "--account", "1200", *where, "--format", "json",
                                      database_url=database_url)  # fmt: skip
        assert code == 0, err
        register = json.loads(out)
        assert len(register["rows"]) == 600
        assert register["rows"][-1]["balance"] == "600.00"


async def test_the_csv_export_has_every_line_and_its_totals_match_the_trial_balance(
    books: Tenant, app_url: str, database_url: str, tmp_path: Any
) -> None:
    trial = (await books.get("/reports/trial-balance", key=books.accountant_key)).json()
    expected = {r["account"]: (r["debit"], r["credit"]) for r in trial["rows"]}
    for n, where in enumerate((over_api(books, app_url), in_db(books))):
        target = tmp_path / f"journal-{n}.csv"
        code, _, err = await kontor("export", "csv", *where, "--output", str(target), database_url=database_url)
        assert code == 0, err
        assert "11 lines of 4 entries" in err
        rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
        totals: dict[str, list[int]] = {}
        for row in rows:
            t = totals.setdefault(row["account"], [0, 0])
            t[0] += int(row["debit"].replace(".", "") or 0)
            t[1] += int(row["credit"].replace(".", "") or 0)
        net = {a: d - c for a, (d, c) in totals.items()}
        want = {a: int(d.replace(".", "")) - int(c.replace(".", "")) for a, (d, c) in expected.items()}
        assert net == want


async def test_closing_a_period_from_the_command_line(
    tenant: Tenant, app_url: str, database_url: str, pool: asyncpg.Pool
) -> None:
    admin = ["--business", str(tenant.business), "--url", app_url, "--key", tenant.admin_key]
    code, out, err = await kontor("period", "close", "--period", "2026-09", *admin)
    assert code == 0, err
    assert "closed through 2026-09" in out
    periods = (await tenant.get("/periods")).json()
    assert [p["period"] for p in periods] == ["2026-09"]
    code, out, err = await kontor("period", "close", "--period", "2026-10", *in_db(tenant), database_url=database_url)
    assert (code, out.strip()) == (0, f"business {tenant.business}: closed through 2026-10-31"), err
    announced = await pool.fetch(
        "SELECT payload->>'period' AS p FROM outbox WHERE merchant_id = $1 AND type = 'period.closed' ORDER BY 1",
        tenant.merchant_id,
    )
    assert [r["p"] for r in announced] == ["2026-09", "2026-10"], "closed from the API and from the database"
    code, out, err = await kontor("period", "close", "--period", "2099-01", *in_db(tenant), database_url=database_url)
    assert code == 1
    assert "period_not_over" in err
    late = await tenant.post_entry(
        [{"account": "1200", "debit": "1.00"}, {"account": "8400", "credit": "1.00"}], date="2026-09-30"
    )
    assert (late.status_code, late.json()["code"]) == (409, "period_closed")


async def test_clear_errors(tenant: Tenant, app_url: str) -> None:
    code, _, err = await kontor("report", "register", *over_api(tenant, app_url))
    assert code == 1
    assert "this report needs --account" in err
    code, _, err = await kontor("report", "trial-balance", "--business", "4242", "--url", app_url, "--key",
                                tenant.accountant_key)  # fmt: skip
    assert code == 1
    assert "the service answered 404" in err
    assert "business_not_found" in err
    code, _, err = await kontor("report", "trial-balance", "--business", "1001", "--url", app_url)
    assert code == 2
    assert "--url needs --key" in err
    code, _, err = await kontor("report", "trial-balance", "--business", "1001", "--url", "http://127.0.0.1:9",
                                "--key", tenant.accountant_key)  # fmt: skip
    assert code == 1
    assert "cannot reach the service at http://127.0.0.1:9" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "command",
    [
        ["verify"],
        ["report", "trial-balance", "--business", "1001"],
        ["export", "csv", "--business", "1001"],
        ["period", "close", "--business", "1001", "--period", "2026-10"],
        ["dunning", "preview"],
        ["secrets", "rotate", "--dry-run"],
    ],
)
async def test_commands_on_books_refuse_a_data_dir_without_a_database(command: list[str], tmp_path: Any) -> None:
    """A mistyped --data-dir is a usage error (exit 2) naming the directory; before, the embedded server created
    an empty database there and verify reported success on nothing."""
    missing = tmp_path / "typo"
    code, out, err = await kontor(*command, "--data-dir", str(missing))
    assert code == 2, (out, err)
    assert f"the data directory {missing} does not exist" in err
    assert not missing.exists(), "nothing is created"
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = await kontor(*command, "--data-dir", str(empty))
    assert code == 2, (out, err)
    assert f"the data directory {empty} holds no database" in err
    assert list(empty.iterdir()) == [], "no database, no key file"


async def test_verify_fails_when_nothing_was_checked(database_url: str) -> None:
    code, out, err = await kontor("verify", "--business", "4242", database_url=database_url)
    assert code == 1, (out, err)
    assert "nothing was checked: no business code found" in err


async def test_verify_and_the_trial_balance_name_an_imbalance_in_words(
    books: Tenant, pool: asyncpg.Pool, app_url: str, database_url: str
) -> None:
    """What only a superuser could do (the balance rows have no trigger): credit an account 0.10 behind the
    journal's back. verify fails naming it; the reports say which side exceeds the other, by a positive amount."""
    t = books
    where = ["--merchant", str(t.merchant_id), "--business", str(t.business)]
    code, out, err = await kontor("verify", *where, database_url=database_url)
    assert (code, out.count(": OK (")) == (0, 1), (out, err)
    key = await pool.fetchrow(
        "SELECT account_id, currency, day FROM balance_totals WHERE merchant_id = $1 AND business = $2 "
        "AND credit_minor > 0 LIMIT 1",
        t.merchant_id,
        t.business,
    )
    bump = (  # one slot of the day (the compaction job may merge the slots meanwhile: their sum is what counts)
        "UPDATE balance_totals SET credit_minor = credit_minor + $6 WHERE ctid = (SELECT ctid FROM balance_totals "
        "WHERE merchant_id = $1 AND business = $2 AND account_id = $3 AND currency = $4 AND day = $5 "
        "AND credit_minor >= 10 LIMIT 1)"
    )
    await pool.execute(bump, t.merchant_id, t.business, *key, 10)
    try:
        code, out, err = await kontor("verify", *where, database_url=database_url)
        assert code == 1, (out, err)
        assert f"business {t.business}: OUT OF BALANCE: EUR credits exceed debits by 0.10" in out
        assert "the balance totals differ from the lines" in out
        code, out, err = await kontor("report", "trial-balance", *over_api(t, app_url))
        assert code == 0, err
        assert out.splitlines()[-1] == "OUT OF BALANCE: EUR credits exceed debits by 0.10."
        assert "-0.10" not in out
    finally:
        await pool.execute(bump, t.merchant_id, t.business, *key, -10)
