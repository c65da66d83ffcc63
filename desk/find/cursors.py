"""Keyset cursors of the finders: the last row shown, as URL-safe base64 JSON; 400 `cursor_invalid` for one
this package did not issue.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import date
from typing import Any

from ledger.domain import DATE_MAX, DATE_MIN
from ledger.errors import BadRequest

__all__ = ["decode_cursor", "encode_cursor"]


# --- cursors -------------------------------------------------------------------------------------------------
def encode_cursor(*values: Any) -> str:
    text = json.dumps([v.isoformat() if isinstance(v, date) else v for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type) -> list[Any]:
    """The values of a cursor this module issued, as `types` (str, int, date); 400 `cursor_invalid` else."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError(cursor)
        out: list[Any] = []
        for value, kind in zip(values, types, strict=True):
            if kind is date:
                day = date.fromisoformat(value)
                if not DATE_MIN <= day <= DATE_MAX:
                    raise ValueError(cursor)
                out.append(day)
            elif not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(cursor)
            elif isinstance(value, int) and not -(2**63) <= value < 2**63:
                raise ValueError(cursor)  # beyond the bigint it is compared with
            elif isinstance(value, str) and (len(value) > 200 or "\x00" in value):
                raise ValueError(cursor)  # no text column holds it
            else:
                out.append(value)
        return out
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("cursor_invalid", "the cursor is not one this service issued") from None
