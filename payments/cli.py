"""`kontor simulate amazon-pay`: the local Amazon Pay API v2 simulator as a process, for development.

Why: there is no Amazon in development. The command starts the simulator, registers a solution-provider key
pair for Kontor (Kontor acts for merchants with delegated tokens, as a hosted solution provider does), writes
the provider's private key and the root certificate that signs the simulator's IPNs to files, and prints the
settings the service needs as `  export NAME=value` lines (a tool parses them with
`(KONTOR_AMAZON_PAY_[A-Z_]+)=(\\S+)`). Merchants are created through the control routes (`POST /sim/merchants`,
`POST /sim/providers/grants`; table in payments/amazon/sim_control.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import click
import uvicorn

from payments.amazon.simulator import AmazonPaySimulator

__all__ = ["simulate"]


@click.group()
def simulate() -> None:
    """Local stand-ins for outside services (there is no network in development and tests)."""


def _write_private(path: Path, text: str) -> None:
    """Write a secret readable by the owner only (0600), replacing an older file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


@simulate.command("amazon-pay")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address.")
@click.option("--port", type=int, default=8089, show_default=True, help="Port.")
@click.option(
    "--ipn-url",
    default="http://127.0.0.1:8000/v1/amazon-pay/ipn",
    show_default=True,
    help="Where the service receives IPNs.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("amazon-pay-simulator"),
    show_default=True,
    help="Where to write the provider's private key and the SNS root certificate.",
)
@click.option(
    "--root-pem",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the root certificate the service must trust for IPN signatures [default: in --state-dir].",
)
def amazon_pay(host: str, port: int, ipn_url: str, state_dir: Path, root_pem: Path | None) -> None:
    """Run the Amazon Pay v2 simulator until interrupted."""
    sim = AmazonPaySimulator(ipn_url=ipn_url)
    provider_key_id, provider_pem = sim.register_provider()
    key_file, root_file = state_dir / "provider-private-key.pem", root_pem or state_dir / "sns-root.pem"
    root_file.parent.mkdir(parents=True, exist_ok=True)
    _write_private(key_file, provider_pem or "")
    root_file.write_bytes(sim.identity.root_pem())
    base = f"http://{host}:{port}"
    click.echo("Amazon Pay v2 simulator. Start the service with:")
    for name, value in (
        ("KONTOR_AMAZON_PAY_ENDPOINT", base),
        ("KONTOR_AMAZON_PAY_SNS_CA_FILE", str(root_file.resolve())),
        ("KONTOR_AMAZON_PAY_SNS_CERT_BASE", base),
        ("KONTOR_AMAZON_PAY_PROVIDER_PUBLIC_KEY_ID", provider_key_id),
        ("KONTOR_AMAZON_PAY_PROVIDER_PRIVATE_KEY_FILE", str(key_file.resolve())),
    ):
        click.echo(f"  export {name}={value}")
    click.echo(f"IPNs go to {ipn_url}. A merchant that authorizes Kontor:")
    click.echo(f'  curl -s -X POST {base}/sim/merchants -d \'{{"region": "eu"}}\'')
    click.echo(
        f"  curl -s -X POST {base}/sim/providers/grants "
        f'-d \'{{"merchant_id": "<merchant_id>", "public_key_id": "{provider_key_id}"}}\''
    )
    uvicorn.run(sim.app(), host=host, port=port, log_config=None, access_log=False, server_header=False)
