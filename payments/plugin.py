"""The payments plugin: Amazon Pay settings, orders and their documents, IPNs, settlement, bank statements.

Found by the service through the `kontor.plugins` entry-point group. Its routes sit behind the ledger's
API-key middleware; the IPN endpoint is public and authenticated by its SNS signature instead.
"""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any

import certifi
import httpx
from cryptography import x509
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.plugins import InitPluginProtocol

from ledger.config import settings_from_env
from ledger.context import Kontor
from ledger.domain import Business
from ledger.scheduler import Jobs
from ledger.tenancy import get_business
from payments.amazon.client import AmazonPayGateway
from payments.amazon.sns import SnsVerifier
from payments.cli import simulate
from payments.closing import book_prepayment_vat
from payments.config import PaymentsSettings
from payments.egress import webhook_client
from payments.http import amazon_pay_ipn, merchant_router, router
from payments.ipn import process_pending_ipns
from payments.notify import emit_period_closed
from payments.orders import Payments
from payments.refunds import poll_pending_refunds, send_requested_refunds
from payments.settings import MerchantSettings
from payments.webhooks import WebhookWorker

__all__ = ["PaymentsPlugin", "plugin"]


class PaymentsPlugin(InitPluginProtocol):
    def __init__(self, settings: PaymentsSettings | None = None) -> None:
        self._given = settings
        self.settings = settings or PaymentsSettings()
        self._http: httpx.AsyncClient | None = None
        self._webhook_http: httpx.AsyncClient | None = None
        self.runtime: Payments | None = None
        self.webhooks: WebhookWorker | None = None

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        return app_config

    def route_handlers(self) -> list[Any]:
        return [router, merchant_router]

    def public_route_handlers(self) -> list[Any]:
        return [amazon_pay_ipn]

    def commands(self) -> list[Any]:
        return [simulate]

    async def start(self, state: State, ctx: Kontor) -> None:
        settings = self._given or settings_from_env(PaymentsSettings)
        self._http = httpx.AsyncClient()
        gateway = AmazonPayGateway(
            access_key_id=settings.amazon_pay_access_key_id,
            secret_key=settings.amazon_pay_secret_key,
            http=self._http,
            endpoint=settings.amazon_pay_endpoint,
        )
        sns = SnsVerifier(
            trusted_roots=_trusted_roots(settings), http=self._http, fetch_base=settings.amazon_pay_sns_cert_base
        )
        self.runtime = Payments(gateway=gateway, sns=sns, settings=settings)
        if emit_period_closed not in ctx.period_closed_hooks:
            ctx.period_closed_hooks.append(emit_period_closed)
        if book_prepayment_vat not in ctx.period_closing_hooks:
            ctx.period_closing_hooks.append(book_prepayment_vat)
        state.payments = self.runtime
        # its own client: every connection checks that the address is public (payments/egress.py)
        self._webhook_http = webhook_client(allow_private=settings.webhook_allow_http)
        self.webhooks = WebhookWorker(
            self._webhook_http,
            attempts_max=settings.webhook_attempts_max,
            backoff_s=settings.webhook_backoff_s,
            timeout_s=settings.webhook_timeout_s,
        )
        self.settings = settings

    async def stop(self) -> None:
        if self.runtime is not None:
            await asyncio.gather(*self.runtime.tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
        if self._webhook_http is not None:
            await self._webhook_http.aclose()

    def register_jobs(self, jobs: Jobs) -> None:
        jobs.add("amazon-pay-refunds", self.follow_refunds, "interval", seconds=self.settings.refund_retry_interval_s)
        jobs.add("amazon-pay-ipns", self.process_ipns, "interval", seconds=10)
        jobs.add("webhooks", self.deliver_webhooks, "interval", seconds=1)

    async def deliver_webhooks(self, ctx: Kontor) -> None:
        assert self.webhooks is not None
        await self.webhooks.run_once(ctx)

    async def process_ipns(self, ctx: Kontor) -> None:
        """IPNs stored but not processed (a crash, Amazon unreachable while re-reading) are picked up here."""
        assert self.runtime is not None
        await process_pending_ipns(ctx, self.runtime, older_than_s=5)

    async def follow_refunds(self, ctx: Kontor) -> None:
        """Request refunds whose request was lost, and re-read refunds still pending at Amazon."""
        assert self.runtime is not None
        rows = await ctx.pool.fetch(
            "SELECT DISTINCT s.merchant_id, s.business, s.seller_id, s.mws_auth_token, s.region, s.sandbox, "
            "s.payment_execution, s.updated_at FROM amazon_pay_settings s JOIN amazon_refunds r "
            "USING (merchant_id, business) WHERE r.state IN ('Requested', 'Pending')"
        )
        for row in rows:
            business: Business = await get_business(ctx, row["merchant_id"], row["business"])
            creds = MerchantSettings(row).credentials
            await send_requested_refunds(ctx, self.runtime.gateway, business, creds)
            await poll_pending_refunds(ctx, self.runtime.gateway, business, creds)


def _trusted_roots(settings: PaymentsSettings) -> list[x509.Certificate]:
    """Roots trusted for Amazon SNS signing certificates: a configured file, else the certifi bundle."""
    path = Path(settings.amazon_pay_sns_ca_file) if settings.amazon_pay_sns_ca_file else Path(certifi.where())
    with warnings.catch_warnings():  # certifi carries legacy roots with non-positive serial numbers
        warnings.filterwarnings("ignore", message="Parsed a serial number which wasn't positive")
        return x509.load_pem_x509_certificates(path.read_bytes())


plugin = PaymentsPlugin()
