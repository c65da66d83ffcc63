"""Encryption at rest for secrets Kontor must store and use again: a merchant's Amazon Pay private key and
delegated token, webhook signing secrets. A database dump, a backup or a replica alone must not hand them out.

`SecretBox` seals with AES-256-GCM (`cryptography`'s AESGCM) into self-describing text

    kv1.<key id>.<nonce>.<ciphertext and tag>        e.g. kv1.3f2a9c0d1e2b4a5f.q83v....Zm9v...

(nonce and ciphertext base64url without padding; the key id is the first 8 bytes of SHA-256 of the key, in
hex), so nobody names keys, a process holding the current and the previous keys opens every value, and
`kontor secrets rotate` finds what the current key did not seal. Every value is bound to its row and purpose
by AES-GCM's associated data (`context`, e.g. "amazon_pay_settings.private_key:<merchant>:<business>"):
copied into another row, it does not open.

Keys come from KONTOR_SECRET_KEY (+ KONTOR_SECRET_KEYS_PREVIOUS), KONTOR_SECRET_KEY_FILE, or else the file
`<data_dir>/secret.key`, created on first start (mode 0600). A malformed key stops the process at start.
Plugins register the columns they seal (`SealedColumn`) so rotation stays generic (see ledger.plugins).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import secrets as random_source
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.config import Settings

__all__ = [
    "KEY_FILE_NAME",
    "Row",
    "SealedColumn",
    "SecretBox",
    "SecretError",
    "generate_key",
    "key_id_of",
    "load_keys",
    "parse_key",
]

log = logging.getLogger("kontor.secrets")

VERSION = "kv1"
KEY_FILE_NAME = "secret.key"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # 96 bits: NIST SP 800-38D, 8.2.2 (random construction)
TAG_BYTES = 16
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_KEY_TEXT = re.compile(r"[A-Za-z0-9_-]{43}=?")
_COLUMN = re.compile(r"[a-z_][a-z0-9_]*")
_TABLE = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?")
_KEY_HELP = "expected the base64url text of 32 bytes (43 characters), as `kontor secrets generate-key` prints"


class SecretError(Exception):
    """A sealed value cannot be opened: malformed, unknown key id, wrong key or context, or tampered.

    The message names the key id and the context at most, never the value, the plaintext or a key."""


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes | None:
    """base64url without padding, canonical only (re-encodes to the same text), else None."""
    if not _BASE64URL.fullmatch(text):
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return data if _encode(data) == text else None


def key_id_of(key: bytes) -> str:
    """The id sealed values carry: the first 8 bytes of SHA-256 of the key, 16 lowercase hex digits."""
    return hashlib.sha256(key).digest()[:8].hex()


def generate_key() -> str:
    """A new key: 32 bytes from the operating system's CSPRNG, as base64url text without padding (43 chars)."""
    return _encode(AESGCM.generate_key(bit_length=KEY_BYTES * 8))


class SecretBox:
    """Seals and opens secrets with AES-256-GCM; `keys[0]` seals, every key opens what it sealed.

    Nonces are 96 random bits per seal (NIST SP 800-38D, 8.2.2); SP 800-38D 8.3 allows at most 2**32 seals
    per key, far beyond the few thousand secrets (and re-seals at rotation) Kontor keeps. `repr` shows key
    ids only.
    """

    __slots__ = ("_aead", "_current")

    def __init__(self, keys: Sequence[bytes]) -> None:
        """keys: 32 bytes each, the current one first. Raises ValueError for no keys or another length."""
        if not keys:
            raise ValueError("SecretBox needs at least one key")
        self._aead: dict[str, AESGCM] = {}
        for key in keys:
            if len(key) != KEY_BYTES:
                raise ValueError(f"a key must be {KEY_BYTES} bytes, got {len(key)}")
            self._aead.setdefault(key_id_of(key), AESGCM(key))
        self._current = key_id_of(keys[0])

    def __repr__(self) -> str:
        return f"SecretBox(key_id={self._current!r}, key_ids={list(self._aead)!r})"

    @property
    def key_id(self) -> str:
        """The current key's id (16 hex digits); values sealed now carry it."""
        return self._current

    @property
    def key_ids(self) -> list[str]:
        """Ids of every key this box opens with, the current first."""
        return list(self._aead)

    @property
    def current_prefix(self) -> str:
        """The text every value sealed with the current key starts with (for SQL filters)."""
        return f"{VERSION}.{self._current}."

    def seal(self, plaintext: bytes, context: str) -> str:
        """Encrypt `plaintext` with the current key, bound to `context` (non-empty; AES-GCM associated data,
        UTF-8). Returns `kv1.<key id>.<nonce>.<ciphertext+tag>`, ASCII, 4/3 of the plaintext + about 60 chars.
        Two seals of the same plaintext differ (fresh nonce)."""
        nonce = random_source.token_bytes(NONCE_BYTES)
        body = self._aead[self._current].encrypt(nonce, plaintext, _associated(context))
        return f"{VERSION}.{self._current}.{_encode(nonce)}.{_encode(body)}"

    def open(self, sealed: str, context: str) -> bytes:
        """The plaintext of a value sealed by `seal` with any of this box's keys and the same `context`.

        Raises SecretError if `sealed` is malformed, names a key this box does not hold, or does not
        authenticate (another key or context, or changed)."""
        key_id, nonce, body = _parse(sealed)
        aead = self._aead.get(key_id)
        if aead is None:
            raise SecretError(f"sealed with key {key_id}, which is not configured (current key {self._current})")
        try:
            return aead.decrypt(nonce, body, _associated(context))
        except InvalidTag:
            raise SecretError(f"sealed value does not open with key {key_id} in context {context!r}") from None

    def is_current(self, sealed: str) -> bool:
        """Whether `sealed` carries the current key's id (it is not opened). Raises SecretError if malformed."""
        return _parse(sealed)[0] == self._current

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """The box of the configured keys (module docstring); SystemExit naming the variable or file if a key is
        malformed, missing or exposed. Creates `<data_dir>/secret.key` if no key is configured."""
        return cls(load_keys(settings))


def _associated(context: str) -> bytes:
    if not context:
        raise ValueError("a secret's context must not be empty: it binds the value to its row and purpose")
    return context.encode("utf-8")


def _parse(sealed: str) -> tuple[str, bytes, bytes]:
    """(key id, nonce, ciphertext+tag) of a sealed value; SecretError if it is not one."""
    parts = sealed.split(".") if isinstance(sealed, str) else []
    if len(parts) != 4 or parts[0] != VERSION:
        raise SecretError(f"not a sealed value: expected {VERSION}.<key id>.<nonce>.<ciphertext>")
    key_id, nonce, body = parts[1], _decode(parts[2]), _decode(parts[3])
    if not _KEY_ID.fullmatch(key_id):
        raise SecretError("sealed value has a malformed key id")
    if nonce is None or len(nonce) != NONCE_BYTES or body is None or len(body) < TAG_BYTES:
        raise SecretError(f"sealed value (key {key_id}) has a malformed nonce or ciphertext")
    return key_id, nonce, body


def parse_key(text: str, source: str) -> bytes:
    """The 32 bytes of a key's text (base64url, padding optional); SystemExit naming `source`, not the text."""
    text = text.strip()
    data = _decode(text.rstrip("=")) if _KEY_TEXT.fullmatch(text) else None
    if data is None or len(data) != KEY_BYTES:
        raise SystemExit(f"{source} is not a valid key: {_KEY_HELP}")
    return data


def load_keys(settings: Settings) -> list[bytes]:
    """The configured keys, current first: KONTOR_SECRET_KEY, else KONTOR_SECRET_KEY_FILE, else the default
    file `<data_dir>/secret.key` (created if missing); then KONTOR_SECRET_KEYS_PREVIOUS. SystemExit on errors."""
    if settings.secret_key and settings.secret_key_file:
        raise SystemExit("KONTOR_SECRET_KEY and KONTOR_SECRET_KEY_FILE are both set: configure one of them")
    if settings.secret_key:
        keys = [parse_key(settings.secret_key, "KONTOR_SECRET_KEY")]
    elif settings.secret_key_file:
        keys = _read_key_file(settings.secret_key_file, "KONTOR_SECRET_KEY_FILE", owner_only=False)
    else:
        keys = _default_key_file(settings.data_dir)
    items = [t.strip() for t in (settings.secret_keys_previous or "").split(",")]
    for number, text in enumerate((t for t in items if t), start=1):
        keys.append(parse_key(text, f"KONTOR_SECRET_KEYS_PREVIOUS (key {number})"))
    return keys


def _read_key_file(path: Path, source: str, *, owner_only: bool) -> list[bytes]:
    """Keys in `path`, one per line (first = current), `#` starts a comment. The file must not be readable by
    group or others (`owner_only`: SystemExit, else a warning)."""
    try:
        mode = path.stat().st_mode & 0o777
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc.__class__.__name__
        raise SystemExit(f"{source}: cannot read the key file {path}: {reason}") from None
    if mode & 0o077:
        message = f"{source}: the key file {path} is accessible to group or others (mode {mode:03o}); chmod 600 it"
        if owner_only:
            raise SystemExit(message)
        log.warning(message)
    keys = [
        parse_key(line.split("#", 1)[0], f"{source} ({path}, line {number})")
        for number, line in enumerate(text.splitlines(), start=1)
        if line.split("#", 1)[0].strip()
    ]
    if not keys:
        raise SystemExit(f"{source}: the key file {path} holds no key")
    return keys


def _default_key_file(data_dir: Path) -> list[bytes]:
    path = data_dir / KEY_FILE_NAME
    try:
        created = _create_key_file(path) if not path.exists() else False
    except OSError as exc:
        raise SystemExit(
            f"cannot create the secret key file {path}: {exc.strerror}; set KONTOR_SECRET_KEY_FILE"
        ) from None
    keys = _read_key_file(path, "the default secret key file", owner_only=True)
    (log.warning if created else log.info)(
        "secret key file %s%s (key %s): back it up together with the database, without it the stored "
        "secrets cannot be read; instances sharing one external database must share the key "
        "(KONTOR_SECRET_KEY or KONTOR_SECRET_KEY_FILE)",
        path,
        " created" if created else "",
        key_id_of(keys[0]),
    )
    return keys


_KEY_FILE_HEADER = """\
# Kontor secret keys (ledger.secrets): the first line seals, later lines only open older values.
# Back this file up together with the database: without it the secrets stored there cannot be read.
"""


def _create_key_file(path: Path) -> bool:
    """Write a fresh key to `path` (mode 0600) unless it exists; atomic: a file appears complete or not at all.
    Returns whether this call created it (a concurrent start may win)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{KEY_FILE_NAME}.")  # mode 0600
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as sink:
            sink.write(f"{_KEY_FILE_HEADER}{generate_key()}\n")
            sink.flush()
            os.fsync(sink.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(temporary)


class Row(Protocol):
    """A row by column name: an asyncpg Record or a dict."""

    def __getitem__(self, key: str, /) -> Any: ...


@dataclass(frozen=True)
class SealedColumn:
    """A text column of sealed values, registered by the plugin that owns it (`sealed_columns()`, see
    ledger.plugins) so that `kontor secrets rotate` re-seals it.

    table, column: lowercase SQL identifiers (table optionally `schema.table`); NULL values are skipped.
    key_columns: the columns that identify one row (its primary key), in order.
    context: the associated data of a row's value, from a row holding at least the key columns; default
    `"<table>.<column>:<key values joined by ':'>"`. The owner seals with `context_for(row)`, so sealing and
    rotation agree.
    """

    table: str
    column: str
    key_columns: tuple[str, ...]
    context: Callable[[Row], str] | None = None

    def __post_init__(self) -> None:
        columns = (self.column, *self.key_columns)
        if not _TABLE.fullmatch(self.table) or not all(_COLUMN.fullmatch(c) for c in columns):
            raise ValueError(f"SealedColumn {self.name}: table and columns must be lowercase SQL identifiers")
        if not self.key_columns or self.column in self.key_columns:
            raise ValueError(f"SealedColumn {self.name}: key columns must be given and exclude the sealed column")

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"

    def context_for(self, row: Row) -> str:
        """The context to seal and open this column's value in `row` with."""
        if self.context is not None:
            return self.context(row)
        return f"{self.name}:" + ":".join(str(row[k]) for k in self.key_columns)
