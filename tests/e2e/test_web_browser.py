"""The accountant's web pages in a real headless Chromium (Debian's chromium + chromium-driver, via Selenium).

The accountant signs in, clicks through every page and the figures on screen equal the API's. Skipped
where Chromium is not installed (`.ci/run` installs it; see README "Tests").
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from desk.web import COOKIE
from tests.conftest import Simulator, Tenant
from tests.e2e.amazon import item, make_shop
from tests.e2e.test_dunning import charged_back_order, put_policy, run
from tests.e2e.test_reconciliation import camt053, upload_statement

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="Chromium and ChromeDriver are not installed (apt install chromium chromium-driver)",
)

if CHROMIUM and CHROMEDRIVER:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.wait import WebDriverWait


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--lang=en-US"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def cells(driver: WebDriver, css: str) -> list[dict[str, Any]]:
    """Each row of a table body: its data-* attributes, and per amount cell (text, data-amount)."""
    rows = []
    for tr in driver.find_elements(By.CSS_SELECTOR, f"{css} tbody tr[data-account], {css} tbody tr[data-entry], "
                                   f"{css} tbody tr[data-customer], {css} tbody tr[data-exception], "
                                   f"{css} tbody tr[data-period], {css} tbody tr[data-run]"):  # fmt: skip
        amounts = [(td.text, td.get_attribute("data-amount")) for td in tr.find_elements(By.CSS_SELECTOR, "td.num")]
        rows.append(
            {
                "data": {k: tr.get_attribute(f"data-{k}") for k in ("account", "entry", "customer", "exception")},
                "text": tr.text,
                "amounts": amounts,
                "balance_side": [
                    td.get_attribute("data-side") for td in tr.find_elements(By.CSS_SELECTOR, "td.balance")
                ],
            }
        )
    return rows


def german(amount: str) -> str:
    """How de_DE writes a wire amount: 1234.50 -> 1.234,50."""
    whole, _, fraction = f"{Decimal(amount):,.2f}".partition(".")
    return f"{whole.replace(',', '.')},{fraction}"


def submit(driver: WebDriver, element: Any) -> None:
    """Click what loads a new page and wait until that page is there (a click does not wait for it): the old
    page's window carries a mark that the new page's window has not. Errors while the page is being replaced
    (the driver asking a document that is going away) mean "not yet"."""
    driver.execute_script("window.kontorOldPage = true")
    element.click()
    WebDriverWait(driver, 10, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script("return window.kontorOldPage === undefined && document.readyState === 'complete'")
    )


def click(driver: WebDriver, text: str) -> None:
    submit(driver, driver.find_element(By.LINK_TEXT, text))


async def books(tenant: Tenant, simulator: Simulator) -> tuple[str, dict[str, Any]]:
    """A charged-back order in dunning, 55 invoices (so the revenue register has two pages), a closed month
    and a bank line nobody can match. Returns the dunned customer and the API's view of everything."""
    shop = await make_shop(tenant, simulator)
    await charged_back_order(shop, "wb-1", [item(1, "119.00")], "119.00")
    await put_policy(shop)
    assert (await run(shop, 41))["counts"]["notice"] == 1
    t = tenant
    await asyncio.gather(
        *(t.sale(f"C-{n % 3}", "11.90", "10.00", "1.90", date=f"2026-10-{1 + n % 28:02d}") for n in range(55))
    )
    assert (
        await t.post("/periods/2026-10/close", {"reason": "month end"}, key=t.accountant_key, idem=None)
    ).status_code == 200
    s = await upload_statement(shop, camt053("WB-ST-1", [("12.34", "CRDT", "no idea who this is")]))
    assert s.status_code == 201, s.text
    key = t.accountant_key
    api: dict[str, Any] = {
        "trial": (await t.get("/reports/trial-balance", key=key, as_of="2026-11-27")).json(),
        "register": [
            (await t.get("/accounts/8400/register", key=key, to="2026-11-27", limit="50")).json(),
        ],
        "customers": {
            c: (await t.get(f"/customers/{c}/account", key=key, as_of="2026-11-27")).json()
            for c in ("C-0", "C-1", "C-2", shop.customer)
        },
        "open_items": (await t.get(f"/customers/{shop.customer}/open-items", key=key, as_of="2026-11-27")).json(),
        "exceptions": (await t.get("/reconciliation/exceptions", key=key, state="open")).json()["items"],
        "gl": (await t.get("/periods/2026-10/gl-report", key=key)).json(),
    }
    cursor = api["register"][0]["next_cursor"]
    assert cursor
    api["register"].append(
        (await t.get("/accounts/8400/register", key=key, to="2026-11-27", limit="50", cursor=cursor)).json()
    )
    return shop.customer, api


async def test_an_accountant_clicks_through_every_page(
    tenant: Tenant, simulator: Simulator, app_url: str, browser: WebDriver
) -> None:
    dunned, api = await books(tenant, simulator)

    def walk() -> None:
        b = browser
        b.delete_all_cookies()
        # a page asks for the key first, then comes back to that page
        b.get(f"{app_url}/ui/1001/trial-balance")
        assert b.current_url.startswith(f"{app_url}/ui/sign-in")
        b.find_element(By.ID, "key").send_keys(tenant.accountant_key)
        submit(b, b.find_element(By.ID, "sign-in"))
        assert b.current_url == f"{app_url}/ui/1001/trial-balance"
        (cookie,) = [c for c in b.get_cookies() if c["name"] == COOKIE]
        assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Lax", "/ui")
        assert b.execute_script("return document.cookie") == ""  # invisible to scripts

        # trial balance: every row and the totals are the API's, written the German way, right-aligned
        rows = cells(b, "#trial-balance")
        assert [(r["data"]["account"], r["amounts"][0][1], r["amounts"][1][1]) for r in rows] == [
            (r["account"], r["debit"], r["credit"]) for r in api["trial"]["rows"]
        ]
        assert all(text == german(value) for r in rows for text, value in r["amounts"])
        total = b.find_element(By.CSS_SELECTOR, "#trial-balance tfoot tr[data-total=EUR]")
        assert total.find_elements(By.CSS_SELECTOR, "td.num")[0].text == german(api["trial"]["totals"][0]["debit"])
        cell = b.find_element(By.CSS_SELECTOR, "#trial-balance td.num")
        assert cell.value_of_css_property("text-align") == "right"
        assert b.find_element(By.ID, "balanced").text == "Soll und Haben stimmen überein."

        # the revenue register, two pages, with the running balance
        click(b, "8400")
        for page in api["register"]:
            shown = cells(b, "#register")
            # cells: entry, debit, credit, balance (signed: a credit balance downloads negative)
            assert [(int(r["data"]["entry"]), r["amounts"][2][1], r["amounts"][3][1].lstrip("-"),
                     r["balance_side"][0]) for r in shown] == [
                (r["entry_id"], r["credit"] or "", r["balance"], r["side"]) for r in page["rows"]
            ]  # fmt: skip
            assert all(r["amounts"][3][0].endswith(" H") for r in shown)  # Haben: a credit balance
            if page["next_cursor"]:
                click(b, "Nächste Seite")
        assert not b.find_elements(By.ID, "next-page")

        # customer accounts, and the dunned customer's open items
        click(b, "Kunden")
        customers = {r["data"]["customer"]: r for r in cells(b, "#customers")}
        assert set(customers) == set(api["customers"])
        for name, account in api["customers"].items():
            balance = customers[name]["amounts"][0][1]
            assert Decimal(balance) == Decimal(account["debit_total"]) - Decimal(account["credit_total"])
        click(b, dunned)
        items = api["open_items"]
        for element, key in [("total", "total"), ("overdue", "overdue_total"), ("costs", "costs")]:
            assert b.find_element(By.ID, element).get_attribute("data-amount") == items[key], key
        assert b.find_element(By.ID, "total").text == german(items["total"])
        assert [tr.get_attribute("data-order") for tr in b.find_elements(By.CSS_SELECTOR, "#open-items tbody tr")] == [
            p["order_reference"] for p in items["principal"]
        ]
        assert b.find_element(By.ID, "level").text == str(items["dunning_level"]) == "1"

        # dunning status: the customer at level 1, the run that put them there
        click(b, "Mahnwesen")
        (in_dunning,) = cells(b, "#in-dunning")
        assert in_dunning["data"]["customer"] == dunned
        assert b.find_element(By.CSS_SELECTOR, "#in-dunning td.level").text == "1"
        assert "1 Mahnung erstellt" in b.find_element(By.CSS_SELECTOR, "#runs tbody tr").text

        # reconciliation exceptions: the bank line nobody could match
        click(b, "Abstimmung")
        shown = cells(b, "#exceptions")
        assert [(int(r["data"]["exception"]), r["amounts"][2][1]) for r in shown] == [  # no., line, amount
            (e["exception_id"], e["amount"]) for e in api["exceptions"]
        ]
        assert any("12,34 EUR" in r["text"] for r in shown)

        # closed periods and the month's G/L report
        click(b, "Perioden")
        assert "2026-10" in b.find_element(By.CSS_SELECTOR, "#periods tbody").text
        click(b, "2026-10")
        gl = {r["data"]["account"]: [v for _, v in r["amounts"]] for r in cells(b, "#gl-report")}
        assert gl == {
            r["account"]: [r[k] for k in ("opening_debit", "opening_credit", "debit", "credit", "closing_debit",
                                          "closing_credit")]
            for r in api["gl"]["rows"]
        }  # fmt: skip
        download = b.find_element(By.LINK_TEXT, "CSV herunterladen").get_attribute("href")
        assert download == f"{app_url}/ui/1001/periods/2026-10/gl-report?format=csv"

        # signing out ends the session: the pages ask for the key again
        submit(b, b.find_element(By.CSS_SELECTOR, "header form button"))
        assert b.current_url == f"{app_url}/ui/sign-in"
        b.get(f"{app_url}/ui/1001/customers")
        assert b.current_url.startswith(f"{app_url}/ui/sign-in")

    await asyncio.to_thread(walk)


async def test_a_wrong_key_is_told_so_in_the_browser(tenant: Tenant, app_url: str, browser: WebDriver) -> None:
    def walk() -> None:
        browser.delete_all_cookies()
        browser.get(f"{app_url}/ui/sign-in")
        browser.find_element(By.ID, "key").send_keys(tenant.poster_key)
        submit(browser, browser.find_element(By.ID, "sign-in"))
        assert browser.find_element(By.CSS_SELECTOR, "[role=alert]").text == "Sign in with an accountant or admin key."
        assert not [c for c in browser.get_cookies() if c["name"] == COOKIE]

    await asyncio.to_thread(walk)
