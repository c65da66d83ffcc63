"""The wire protocol both sides share: MWS request signing (SignatureVersion 2, HmacSHA256) and XML.

Requests are form-encoded POSTs to `/OffAmazonPayments[_Sandbox]/2013-01-01` with SellerId, the
merchant's MWSAuthToken (delegated access) and the developer's AWSAccessKeyId, signed over
"POST\\n<host>\\n<path>\\n<canonical query>" with the developer's secret key. Responses are XML in the
OffAmazonPayments namespace; errors come as <ErrorResponse><Error><Code>.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote
from xml.etree.ElementTree import Element  # building XML only; parsing goes through defusedxml

from defusedxml.ElementTree import fromstring

__all__ = ["API_VERSION", "NAMESPACE", "api_path", "child", "find", "parse", "sign", "text"]

API_VERSION = "2013-01-01"
NAMESPACE = "http://mws.amazonservices.com/schema/OffAmazonPayments/2013-01-01"


def api_path(sandbox: bool) -> str:
    return f"/OffAmazonPayments{'_Sandbox' if sandbox else ''}/{API_VERSION}"


def _canonical(params: Mapping[str, str]) -> str:
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items()))


def sign(secret_key: str, host: str, path: str, params: Mapping[str, str]) -> str:
    """The MWS signature of a request (the `Signature` parameter itself excluded)."""
    payload = f"POST\n{host.lower()}\n{path}\n{_canonical(params)}".encode()
    return base64.b64encode(hmac.new(secret_key.encode(), payload, hashlib.sha256).digest()).decode()


def parse(body: bytes) -> Element:
    """Parse a response safely (no DTDs, no entities) and drop namespaces from the tags."""
    root: Element = fromstring(body, forbid_dtd=True)
    for element in root.iter():
        if "}" in element.tag:
            element.tag = element.tag.split("}", 1)[1]
    return root


def find(element: Element, path: str) -> Element | None:
    return element.find(path)


def child(element: Element, path: str) -> Element:
    found = element.find(path)
    if found is None:
        raise ValueError(f"response lacks {path}")
    return found


def text(element: Element, path: str, default: str | None = None) -> str | None:
    found = element.find(path)
    return default if found is None or found.text is None else found.text.strip()
