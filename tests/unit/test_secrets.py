"""SecretBox: sealing round trips, everything that must not open, and where keys come from (ledger.secrets)."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger.cli import main
from ledger.config import Settings
from ledger.plugins import plugin_sealed_columns
from ledger.secrets import SealedColumn, SecretBox, SecretError, generate_key, key_id_of

KEY_A, KEY_B, KEY_C = (bytes([n]) * 32 for n in (1, 2, 3))
CONTEXT = "amazon_pay_settings.private_key:7:1001"
PLAINTEXT = b"-----BEGIN PRIVATE KEY-----\nMIIEvQ...\n-----END PRIVATE KEY-----\n"


def text(data: bytes) -> str:
    """base64url without padding, as keys and sealed parts are written."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def box_from(tmp_path: Path, **env: str) -> SecretBox:
    environ = {"KONTOR_DATA_DIR": str(tmp_path), **{f"KONTOR_{k.upper()}": v for k, v in env.items()}}
    return SecretBox.from_settings(Settings.from_env(environ))


def replace_part(sealed: str, index: int, new: str) -> str:
    parts = sealed.split(".")
    parts[index] = new
    return ".".join(parts)


def flip_first_char(part: str) -> str:
    return ("B" if part[0] == "A" else "A") + part[1:]


# sealing and opening


def test_a_sealed_value_opens_in_its_context_and_says_which_key_sealed_it() -> None:
    box = SecretBox([KEY_A])
    sealed = box.seal(PLAINTEXT, CONTEXT)
    version, key_id, nonce, body = sealed.split(".")
    assert (version, key_id) == ("kv1", hashlib.sha256(KEY_A).digest()[:8].hex())
    assert key_id == box.key_id == key_id_of(KEY_A)
    assert len(base64.urlsafe_b64decode(nonce + "==")) == 12
    assert len(base64.urlsafe_b64decode(body + "==")) == len(PLAINTEXT) + 16
    assert sealed.isascii()
    assert PLAINTEXT.decode() not in sealed
    assert box.open(sealed, CONTEXT) == PLAINTEXT
    assert box.is_current(sealed)
    assert box.open(box.seal(b"", "x"), "x") == b""
    assert box.open(box.seal(b"\x00\xff", "webhook:ü:1"), "webhook:ü:1") == b"\x00\xff"


def test_two_seals_of_the_same_plaintext_differ() -> None:
    box = SecretBox([KEY_A])
    sealed = {box.seal(PLAINTEXT, CONTEXT) for _ in range(50)}
    assert len(sealed) == 50
    assert len({s.split(".")[2] for s in sealed}) == 50  # fresh nonces


def test_a_value_does_not_open_in_another_context() -> None:
    box = SecretBox([KEY_A])
    sealed = box.seal(PLAINTEXT, CONTEXT)
    for other in ("amazon_pay_settings.private_key:7:1002", "amazon_pay_settings.mws_auth_token:7:1001", CONTEXT + " "):
        with pytest.raises(SecretError, match="does not open") as raised:
            box.open(sealed, other)
        assert PLAINTEXT.decode()[:20] not in str(raised.value)
    with pytest.raises(ValueError, match="context"):
        box.seal(PLAINTEXT, "")


@pytest.mark.parametrize("part", [2, 3])
def test_a_changed_nonce_or_ciphertext_does_not_open(part: int) -> None:
    box = SecretBox([KEY_A])
    sealed = box.seal(PLAINTEXT, CONTEXT)
    with pytest.raises(SecretError):
        box.open(replace_part(sealed, part, flip_first_char(sealed.split(".")[part])), CONTEXT)
    body = base64.urlsafe_b64decode(sealed.split(".")[3] + "==")
    for index in (0, len(body) - 1):  # first ciphertext byte, last tag byte
        changed = body[:index] + bytes([body[index] ^ 1]) + body[index + 1 :]
        with pytest.raises(SecretError, match="does not open"):
            box.open(replace_part(sealed, 3, text(changed)), CONTEXT)


def test_a_changed_key_id_does_not_open() -> None:
    box = SecretBox([KEY_A, KEY_B])
    sealed = box.seal(PLAINTEXT, CONTEXT)
    with pytest.raises(SecretError, match="does not open"):  # the other key of the box
        box.open(replace_part(sealed, 1, key_id_of(KEY_B)), CONTEXT)
    with pytest.raises(SecretError, match="not configured"):
        box.open(replace_part(sealed, 1, "0123456789abcdef"), CONTEXT)


def test_a_value_sealed_with_a_previous_key_opens_and_is_not_current() -> None:
    old = SecretBox([KEY_A]).seal(PLAINTEXT, CONTEXT)
    rotated = SecretBox([KEY_B, KEY_A])
    assert rotated.key_id == key_id_of(KEY_B)
    assert rotated.key_ids == [key_id_of(KEY_B), key_id_of(KEY_A)]
    assert rotated.open(old, CONTEXT) == PLAINTEXT
    assert not rotated.is_current(old)
    resealed = rotated.seal(rotated.open(old, CONTEXT), CONTEXT)
    assert rotated.is_current(resealed)
    assert resealed.startswith(rotated.current_prefix)
    assert SecretBox([KEY_B]).open(resealed, CONTEXT) == PLAINTEXT


def test_a_value_sealed_with_an_unknown_key_names_the_key_id_only() -> None:
    sealed = SecretBox([KEY_C]).seal(PLAINTEXT, CONTEXT)
    with pytest.raises(SecretError) as raised:
        SecretBox([KEY_B, KEY_A]).open(sealed, CONTEXT)
    message = str(raised.value)
    assert key_id_of(KEY_C) in message
    assert sealed.split(".")[3][:16] not in message
    assert not SecretBox([KEY_B]).is_current(sealed)  # is_current does not need the key


@pytest.mark.parametrize(
    "sealed",
    [
        "",
        "plain text secret",
        "kv1",
        "kv1...",
        "kv2.0123456789abcdef.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",
        "kv1.0123456789ABCDEF.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",  # key id in upper case
        "kv1.0123456789abcde.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",  # 15 hex digits
        "kv1.0123456789abcdef.AAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",  # nonce not 12 bytes
        "kv1.0123456789abcdef.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAA",  # 15 bytes: shorter than a tag
        "kv1.0123456789abcdef.AAAAAAAAAAAAAAA=.AAAAAAAAAAAAAAAAAAAAAA",  # padding
        "kv1.0123456789abcdef.AAAAAAAAAAAAAAA+.AAAAAAAAAAAAAAAAAAAAAA",  # not base64url
        "kv1.0123456789abcdef.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAB",  # non-canonical last character
        "kv1.0123456789abcdef.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA.extra",
        " kv1.0123456789abcdef.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_malformed_values_are_refused_without_being_echoed(sealed: str) -> None:
    box = SecretBox([KEY_A])
    with pytest.raises(SecretError) as raised:
        box.open(sealed, CONTEXT)
    assert len(sealed) < 20 or sealed.strip() not in str(raised.value)
    with pytest.raises(SecretError):
        box.is_current(sealed)


def test_a_box_needs_keys_of_32_bytes_and_never_shows_them() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        SecretBox([])
    with pytest.raises(ValueError, match="32 bytes"):
        SecretBox([KEY_A, b"short"])
    key = os.urandom(32)
    box = SecretBox([key, KEY_A])
    for shown in (repr(box), str(box)):
        assert key_id_of(key) in shown
        assert key.hex() not in shown
        assert text(key) not in shown
        assert base64.b64encode(key).decode() not in shown


def test_generated_keys_are_32_random_bytes_in_base64url() -> None:
    keys = {generate_key() for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        assert len(key) == 43
        assert len(base64.urlsafe_b64decode(key + "=")) == 32


# where the keys come from


def test_the_current_key_and_previous_keys_come_from_the_environment(tmp_path: Path) -> None:
    old_a, old_c = SecretBox([KEY_A]).seal(b"a", "c"), SecretBox([KEY_C]).seal(b"c", "c")
    box = box_from(tmp_path, secret_key=text(KEY_B), secret_keys_previous=f" {text(KEY_A)},{text(KEY_C)}=, ")
    assert box.key_id == key_id_of(KEY_B)
    assert (box.open(old_a, "c"), box.open(old_c, "c")) == (b"a", b"c")
    assert not (tmp_path / "secret.key").exists()  # a configured key: no default file
    settings = Settings.from_env({"KONTOR_SECRET_KEY": text(KEY_B), "KONTOR_SECRET_KEYS_PREVIOUS": text(KEY_A)})
    assert text(KEY_B) not in repr(settings)
    assert text(KEY_A) not in repr(settings)


def test_a_key_file_holds_one_key_a_line_current_first_with_comments(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# rotated 2026-11\n{text(KEY_B)}  # current\n\n   \n# old\n{text(KEY_A)}\n")
    path.chmod(0o600)
    box = box_from(tmp_path, secret_key_file=str(path), secret_keys_previous=text(KEY_C))
    assert box.key_ids == [key_id_of(KEY_B), key_id_of(KEY_A), key_id_of(KEY_C)]


def test_an_explicit_key_file_readable_by_others_is_used_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "mounted-secret"
    path.write_text(text(KEY_A) + "\n")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="kontor.secrets"):
        assert box_from(tmp_path, secret_key_file=str(path)).key_id == key_id_of(KEY_A)
    assert "mode 644" in caplog.text


def test_without_a_configured_key_the_data_dir_key_file_is_created_once_owner_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "kontor"
    with caplog.at_level(logging.INFO, logger="kontor.secrets"):
        first = box_from(data_dir)
    path = data_dir / "secret.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert f"secret key file {path} created" in caplog.text
    assert "back it up together with the database" in caplog.text
    assert "instances sharing one external database must share the key" in caplog.text
    assert [p.name for p in data_dir.iterdir()] == ["secret.key"]  # no temporary file left
    keys = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    assert len(keys) == 1
    assert keys[0] not in caplog.text
    assert box_from(data_dir).key_id == first.key_id  # read again, not replaced
    assert box_from(data_dir).open(first.seal(PLAINTEXT, CONTEXT), CONTEXT) == PLAINTEXT


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_default_key_file_readable_by_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "secret.key"
    path.write_text(text(KEY_A) + "\n")
    path.chmod(mode)
    with pytest.raises(SystemExit, match=f"{path}.*group or others.*chmod 600"):
        box_from(tmp_path)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"secret_key": "not-a-key"}, "KONTOR_SECRET_KEY is"),
        ({"secret_key": text(KEY_A)[:-1]}, "KONTOR_SECRET_KEY is"),  # 31.x bytes
        ({"secret_key": text(KEY_A) + "AAAA"}, "KONTOR_SECRET_KEY is"),  # 35 bytes
        ({"secret_key": base64.b64encode(b"\xfb" * 32).decode()}, "KONTOR_SECRET_KEY is"),  # base64, not base64url
        (
            {"secret_key": text(KEY_A), "secret_keys_previous": f"{text(KEY_B)},oops"},
            r"KONTOR_SECRET_KEYS_PREVIOUS \(key 2\)",
        ),
    ],
)
def test_a_malformed_key_stops_the_process_naming_the_variable_not_the_value(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    with pytest.raises(SystemExit, match=named) as raised:
        box_from(tmp_path, **env)
    message = str(raised.value.code)
    assert "base64url text of 32 bytes" in message
    assert all(value not in message for value in env.values())


def test_key_file_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"{text(KEY_A)}\nnot a key\n")
    path.chmod(0o600)
    with pytest.raises(SystemExit, match=rf"KONTOR_SECRET_KEY_FILE \({path}, line 2\) is not a valid key"):
        box_from(tmp_path, secret_key_file=str(path))
    path.write_text("# only a comment\n")
    with pytest.raises(SystemExit, match="holds no key"):
        box_from(tmp_path, secret_key_file=str(path))
    with pytest.raises(SystemExit, match=r"KONTOR_SECRET_KEY_FILE: cannot read the key file .*missing"):
        box_from(tmp_path, secret_key_file=str(tmp_path / "missing"))
    with pytest.raises(SystemExit, match="both set"):
        box_from(tmp_path, secret_key=text(KEY_A), secret_key_file=str(path))


def test_commands_stop_on_a_malformed_key_before_touching_the_database(tmp_path: Path) -> None:
    env = {"KONTOR_SECRET_KEY": "x" * 43, "KONTOR_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    result = CliRunner(env=env).invoke(main, ["secrets", "rotate", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "KONTOR_SECRET_KEY is not a valid key" in result.output
    assert "x" * 43 not in result.output


def test_generate_key_command_prints_a_usable_key() -> None:
    result = CliRunner().invoke(main, ["secrets", "generate-key"])
    assert result.exit_code == 0
    assert SecretBox.from_settings(Settings(secret_key=result.output.strip())).key_id


# the registry of sealed columns


def test_a_sealed_column_binds_values_to_table_column_and_row_by_default() -> None:
    column = SealedColumn("amazon_pay_settings", "private_key", ("merchant_id", "business"))
    assert column.context_for({"merchant_id": 7, "business": 1001}) == CONTEXT
    custom = SealedColumn("callbacks", "secret", ("id",), context=lambda row: f"webhook:{row['id']}")
    assert custom.context_for({"id": 3}) == "webhook:3"


@pytest.mark.parametrize(
    ("table", "column", "keys"),
    [
        ('t"; DROP TABLE entries; --', "secret", ("id",)),
        ("t", "Secret", ("id",)),
        ("t", "secret", ()),
        ("t", "secret", ("secret",)),
        ("t", "s.secret", ("id",)),
        ("a.b.c", "secret", ("id",)),
    ],
)
def test_a_sealed_column_takes_plain_identifiers_only(table: str, column: str, keys: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="SealedColumn"):
        SealedColumn(table, column, keys)


def test_a_column_registered_twice_is_refused_at_start() -> None:
    class Plugin:
        def sealed_columns(self) -> list[SealedColumn]:
            return [SealedColumn("public.t", "secret", ("id",))]

    assert len(plugin_sealed_columns([Plugin(), object()])) == 1
    with pytest.raises(ValueError, match=r"registered twice: public\.t\.secret"):
        plugin_sealed_columns([Plugin(), Plugin()])
