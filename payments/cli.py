"""`kontor simulate amazon-pay`: the local Amazon Pay simulator as a process, for development.

It speaks the MWS operations Kontor calls, registers any seller on first use (with whatever MWS auth
token the merchant's Amazon Pay settings carry), sends signed IPNs to the service and produces settlement
reports on request (`GET /sim/settlement-report?seller_id=...`). It signs IPNs with its own root
certificate, written to a file that the service is told to trust; the command prints the settings.
"""

from __future__ import annotations

from pathlib import Path

import click
import uvicorn

from payments.amazon.simulator import AmazonPaySimulator

__all__ = ["simulate"]


@click.group()
def simulate() -> None:
    """Local stand-ins for outside services (there is no network in development and tests)."""


@simulate.command("amazon-pay")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address.")
@click.option("--port", type=int, default=8089, show_default=True, help="Port.")
@click.option(
    "--ipn-url",
    default="http://127.0.0.1:8000/v1/amazon-pay/ipn",
    show_default=True,
    help="Where the service receives IPNs.",
)
@click.option("--access-key-id", default="KONTORSIMACCESSKEY", show_default=True, help="Kontor's MWS access key id.")
@click.option("--secret-key", default="kontor-simulator-secret", show_default=True, help="Kontor's MWS secret key.")
@click.option(
    "--root-pem",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("amazon-pay-simulator-root.pem"),
    show_default=True,
    help="Where to write the root certificate the service must trust for IPN signatures.",
)
def amazon_pay(host: str, port: int, ipn_url: str, access_key_id: str, secret_key: str, root_pem: Path) -> None:
    """Run the Amazon Pay simulator until interrupted."""
    sim = AmazonPaySimulator(access_keys={access_key_id: secret_key}, ipn_url=ipn_url, auto_register=True)
    root_pem.write_bytes(sim.identity.root_pem())
    base = f"http://{host}:{port}"
    click.echo("Amazon Pay simulator. Start the service with:")
    for name, value in (
        ("KONTOR_AMAZON_PAY_ACCESS_KEY_ID", access_key_id),
        ("KONTOR_AMAZON_PAY_SECRET_KEY", secret_key),
        ("KONTOR_AMAZON_PAY_ENDPOINT", base),
        ("KONTOR_AMAZON_PAY_SNS_CA_FILE", str(root_pem.resolve())),
        ("KONTOR_AMAZON_PAY_SNS_CERT_BASE", base),
    ):
        click.echo(f"  export {name}={value}")
    click.echo(f"IPNs go to {ipn_url}; settlement reports: GET {base}/sim/settlement-report?seller_id=...", err=False)
    uvicorn.run(sim.app(), host=host, port=port, log_config=None, access_log=False, server_header=False)
