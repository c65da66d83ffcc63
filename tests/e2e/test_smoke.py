from tests.conftest import Tenant


async def test_post_and_read_entry(tenant: Tenant) -> None:
    entry = await tenant.sale("C-1", "119.00", "100.00", "19.00")
    assert entry["lines"][0] == {"line_no": 1, "account": "1400", "debit": "119.00", "credit": None,
                                 "currency": "EUR", "customer": "C-1"}
    r = await tenant.get(f"/entries/{entry['id']}")
    assert r.status_code == 200, r.text
    assert r.json() == entry
    r = await tenant.get("/customers/C-1/account")
    assert r.json()["state"] == "DEBIT" and r.json()["balance"] == "119.00"
    r = await tenant.get("/reports/trial-balance")
    assert r.json()["balanced"] is True, r.text
