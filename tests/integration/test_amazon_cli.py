"""`kontor simulate amazon-pay` as a process: the six settings a tool parses, the files it writes, a merchant
created the way the printed curl lines say, and a delegated call with the printed provider key.

The command is started through its click group (`payments.cli.simulate`): the `kontor` entry point loads every
plugin, and the payments use cases still import the MWS client on this branch.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from payments.amazon.client import AmazonPayClient, Credentials
from payments.amazon.simulator import CHARGEBACK_ACCOUNT, PAYMENT_ACCOUNT
from payments.config import PaymentsSettings
from tests.conftest import free_port

SETTING = re.compile(r"(KONTOR_AMAZON_PAY_[A-Z_]+)=(\S+)")
NAMES = {
    "KONTOR_AMAZON_PAY_ENDPOINT",
    "KONTOR_AMAZON_PAY_SNS_CA_FILE",
    "KONTOR_AMAZON_PAY_SNS_CERT_BASE",
    "KONTOR_AMAZON_PAY_PROVIDER_PUBLIC_KEY_ID",
    "KONTOR_AMAZON_PAY_PROVIDER_PRIVATE_KEY_FILE",
}


def _settings(process: subprocess.Popen[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    deadline = time.monotonic() + 30
    while set(found) != NAMES and time.monotonic() < deadline:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            break
        match = SETTING.search(line)
        if match and line.startswith("  export "):
            found[match[1]] = match[2]
    return found


async def _exercise(settings: dict[str, str], key: rsa.RSAPrivateKey, root: bytes) -> None:
    """Wait for the server, then: the root it serves, a merchant, a grant, a delegated call."""
    url = settings["KONTOR_AMAZON_PAY_ENDPOINT"]
    async with httpx.AsyncClient() as http:
        for _ in range(100):
            try:
                served = await http.get(f"{url}/sns/root.pem")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("the simulator did not start")
        assert served.content == root
        merchant = (await http.post(f"{url}/sim/merchants", json={"region": "eu"})).json()
        provider_key_id = settings["KONTOR_AMAZON_PAY_PROVIDER_PUBLIC_KEY_ID"]
        grant = {"merchant_id": merchant["merchant_id"], "public_key_id": provider_key_id}
        mws = (await http.post(f"{url}/sim/providers/grants", json=grant)).json()["mws_auth_token"]
        client = AmazonPayClient(http, endpoint=url)
        kontor = Credentials(merchant["merchant_id"], provider_key_id, key, "eu", True)
        token = await client.exchange_auth_token(kontor, merchant["merchant_id"], mws)
        delegated = Credentials(merchant["merchant_id"], provider_key_id, key, "eu", True, auth_token=token)
        assert (
            await client.list_reports(delegated, report_types=["_GET_FLAT_FILE_OFFAMAZONPAYMENTS_SETTLEMENT_DATA_"])
            == []
        )


def test_simulate_amazon_pay_prints_settings_and_serves(tmp_path: Path) -> None:
    port = free_port()
    code = "from payments.cli import simulate; simulate()"
    args = [sys.executable, "-c", code, "amazon-pay", "--port", str(port), "--state-dir", str(tmp_path / "state")]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        settings = _settings(process)
        assert set(settings) == NAMES
        url = settings["KONTOR_AMAZON_PAY_ENDPOINT"]
        assert url == f"http://127.0.0.1:{port}" == settings["KONTOR_AMAZON_PAY_SNS_CERT_BASE"]
        # the simulator signs from Amazon's own topic accounts, which the service allows by default
        assert PaymentsSettings().topic_accounts() == {PAYMENT_ACCOUNT, CHARGEBACK_ACCOUNT}
        key_file = Path(settings["KONTOR_AMAZON_PAY_PROVIDER_PRIVATE_KEY_FILE"])
        assert key_file.stat().st_mode & 0o077 == 0
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        root = Path(settings["KONTOR_AMAZON_PAY_SNS_CA_FILE"]).read_bytes()
        asyncio.run(_exercise(settings, key, root))
    finally:
        process.terminate()
        process.wait(timeout=20)
        if process.stdout is not None:
            process.stdout.close()
