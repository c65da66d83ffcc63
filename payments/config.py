"""Settings of the payments plugin (KONTOR_AMAZON_PAY_*), read by the plugin when the service starts."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PaymentsSettings"]


@dataclass(frozen=True)
class PaymentsSettings:
    # Kontor's MWS developer credentials (the merchants delegate access to this developer)
    amazon_pay_access_key_id: str = ""
    amazon_pay_secret_key: str = ""
    # Amazon's hosts by region unless set: the simulator, or a proxy
    amazon_pay_endpoint: str | None = None
    # SNS: roots trusted for the signing certificate (default: the certifi bundle), and, for development and
    # tests only, where to fetch certificates from instead of the (pattern-checked) URL in the message
    amazon_pay_sns_ca_file: str | None = None
    amazon_pay_sns_cert_base: str | None = None
    # the AWS account publishing Amazon Pay's IPN topics; a topic must also end with the merchant's SellerId
    amazon_pay_topic_account: str = "291180941288"
    refund_retry_interval_s: float = 60.0
    # a bank transfer matches an invoice or a customer when it differs from what is open by at most this
    # (a decimal amount in the business code's currency; an upload may pass ?tolerance= to override it)
    bank_match_tolerance: str = "0.00"
    # webhooks to merchants: attempts per delivery, first retry delay (doubling each time), request timeout;
    # plain http and private addresses only for development and tests
    webhook_attempts_max: int = 12
    webhook_backoff_s: float = 30.0
    webhook_timeout_s: float = 10.0
    webhook_allow_http: bool = False
