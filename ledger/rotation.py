"""Re-sealing stored secrets with the current key (`kontor secrets rotate`), and finding values no key opens.

Why: after a new key is made current (the old one kept as previous), values sealed with the old key still
open, but the old key can only be retired once nothing needs it. Rotation walks every registered
`SealedColumn` in primary-key order, in batches: each batch is one transaction that locks its rows
(`SELECT ... FOR UPDATE`), opens each value with whichever key sealed it and seals it with the current one.
Rows whose value does not open are reported by their key columns (never the value) and left as they are.
Running it again finds nothing to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from ledger.secrets import SealedColumn, SecretBox, SecretError

__all__ = ["BATCH_ROWS", "ColumnRotation", "count_unopenable", "rotate_sealed_columns"]

BATCH_ROWS = 500


@dataclass
class ColumnRotation:
    """What rotation did to one column: values re-sealed (or, dry run, to re-seal), values already sealed with
    the current key, and rows that did not open as `"k1=v1, k2=v2: reason"`."""

    column: str  # table.column
    resealed: int = 0
    current: int = 0
    failed: list[str] = field(default_factory=list)


async def rotate_sealed_columns(
    pool: asyncpg.Pool,
    box: SecretBox,
    columns: list[SealedColumn],
    *,
    dry_run: bool = False,
    batch_rows: int = BATCH_ROWS,
) -> list[ColumnRotation]:
    """Re-seal with `box`'s current key every non-NULL value of `columns` sealed with another key, `batch_rows`
    rows per transaction, in key-column order. `dry_run`: open them (so failures show), write and lock nothing.

    Columns hold text; their key columns are a non-null unique key. Returns one ColumnRotation per column, in
    the order given; values that do not open are listed there, not raised. Database errors and errors of a
    column's context function propagate (the batch at hand is rolled back, earlier batches stay)."""
    return [await _rotate_column(pool, box, column, dry_run=dry_run, batch_rows=batch_rows) for column in columns]


async def _rotate_column(
    pool: asyncpg.Pool, box: SecretBox, column: SealedColumn, *, dry_run: bool, batch_rows: int
) -> ColumnRotation:
    result = ColumnRotation(column.name)
    after: list[Any] | None = None
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                _select(column, after is not None, lock=not dry_run), box.current_prefix, batch_rows, *(after or [])
            )
            updates = _reseal(box, column, rows, result)
            if updates and not dry_run:
                await conn.executemany(_update(column), updates)
        if len(rows) < batch_rows:
            break
        after = [rows[-1][k] for k in column.key_columns]
    sql = f"SELECT count(*) FROM {_quote(column.table)} WHERE starts_with({_quote(column.column)}, $1)"
    result.current = await pool.fetchval(sql, box.current_prefix) - (0 if dry_run else result.resealed)
    return result


def _reseal(box: SecretBox, column: SealedColumn, rows: list[asyncpg.Record], result: ColumnRotation) -> list[Any]:
    """(new value, key values..., old value) for each row that opens; failures are added to `result`."""
    updates: list[Any] = []
    for row in rows:
        context = column.context_for(row)
        old = row[column.column]
        try:
            new = box.seal(box.open(old, context), context)
        except SecretError as exc:
            result.failed.append(", ".join(f"{k}={row[k]}" for k in column.key_columns) + f": {exc}")
            continue
        updates.append((new, *(row[k] for k in column.key_columns), old))
        result.resealed += 1
    return updates


async def count_unopenable(pool: asyncpg.Pool, box: SecretBox, columns: list[SealedColumn]) -> dict[str, int]:
    """Per column (`table.column`), how many values carry a key id `box` does not hold (or are not sealed values
    at all): they will not open in this process. Columns without such values are left out."""
    found: dict[str, int] = {}
    for column in columns:
        sealed = _quote(column.column)
        count = await pool.fetchval(
            f"SELECT count(*) FROM {_quote(column.table)} WHERE {sealed} IS NOT NULL "
            f"AND NOT (split_part({sealed}, '.', 1) = 'kv1' AND split_part({sealed}, '.', 2) = ANY($1::text[]))",
            box.key_ids,
        )
        if count:
            found[column.name] = count
    return found


def _quote(name: str) -> str:
    """A (schema-qualified) identifier, quoted; SealedColumn has checked it is one."""
    return ".".join(f'"{part}"' for part in name.split("."))


def _select(column: SealedColumn, after: bool, *, lock: bool) -> str:
    """Rows not sealed with the current key ($1: its prefix), $2 at most, keyset-paged after $3, $4, ..."""
    keys = ", ".join(_quote(k) for k in column.key_columns)
    sealed = _quote(column.column)
    bound = ", ".join(f"${i + 3}" for i in range(len(column.key_columns)))
    return (
        f"SELECT {keys}, {sealed} FROM {_quote(column.table)} "
        f"WHERE {sealed} IS NOT NULL AND NOT starts_with({sealed}, $1)"
        + (f" AND ({keys}) > ({bound})" if after else "")
        + f" ORDER BY {keys} LIMIT $2"
        + (" FOR UPDATE" if lock else "")
    )


def _update(column: SealedColumn) -> str:
    """Set $1 where the key columns equal $2, $3, ... and the value is still the one read (last parameter)."""
    keys = column.key_columns
    match = " AND ".join(f"{_quote(k)} = ${i + 2}" for i, k in enumerate(keys))
    sealed = _quote(column.column)
    return f"UPDATE {_quote(column.table)} SET {sealed} = $1 WHERE {match} AND {sealed} = ${len(keys) + 2}"
