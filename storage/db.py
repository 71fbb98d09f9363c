"""The SQLite database: one aiosqlite connection, WAL mode, numbered schema migrations."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from types import TracebackType

import aiosqlite

from bot.errors import StorageError

__all__ = ["Database", "migrations"]

log = logging.getLogger(__name__)

MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
BUSY_TIMEOUT_MS = 5000


def migrations() -> list[tuple[int, str, str]]:
    """Return (version, name, sql) of every packaged migration, in order."""
    found = []
    for entry in resources.files("storage").joinpath("migrations").iterdir():
        match = MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [version for version, _, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise StorageError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return found


# All pages in one step: one read snapshot, which writers do not wait for (WAL). A stepped
# backup restarts whenever another connection commits, and under steady writes never ends.
BACKUP_PAGES = -1


def _backup(source: str, target: Path) -> None:
    partial = target.with_name(target.name + ".partial")
    src = sqlite3.connect(source)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst, pages=BACKUP_PAGES)
        finally:
            dst.close()
    finally:
        src.close()
    partial.replace(target)


class Database:
    """An open database; use as `async with Database(path) as db:`.

    With `read_only`, an existing file is opened as it is (never created or migrated, its
    schema must be current) and every write through the connection fails.
    """

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = str(path)
        self.read_only = read_only
        self._conn: aiosqlite.Connection | None = None
        # One connection is shared by the pipeline and the delivery loop: a task's
        # transaction must never take in another task's statements. The task holding the
        # lock may nest savepoints inside its own transaction.
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[object] | None = None

    @property
    def conn(self) -> aiosqlite.Connection:
        """Return the open connection."""
        if self._conn is None:
            raise StorageError("database is not open")
        return self._conn

    async def __aenter__(self) -> Database:
        if self.read_only and not Path(self.path).is_file():
            raise StorageError(f"no database at {self.path}")
        if self.path != ":memory:" and not self.read_only:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = await aiosqlite.connect(self.path, isolation_level=None)
            await self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await self._conn.execute("PRAGMA journal_mode = WAL")
            await self._conn.execute("PRAGMA synchronous = NORMAL")
            await self._conn.execute("PRAGMA foreign_keys = ON")
            if self.read_only:
                await self._check_current()
                await self._conn.execute("PRAGMA query_only = ON")
            else:
                await self._migrate()
        except (sqlite3.Error, OSError) as err:
            await self.close()
            raise StorageError(f"cannot open database {self.path}: {err}") from err
        except BaseException:
            await self.close()  # an open connection's thread would keep the process alive
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def backup(self, target: str | Path) -> None:
        """Copy the database to `target` while it is in use (SQLite's online backup).

        A connection of its own, in a worker thread, copies one consistent snapshot; the
        copy is written next to `target` and renamed into place, so a backup file is
        always whole.
        """
        if self.path == ":memory:":
            raise StorageError("an in-memory database has nothing to back up")
        await asyncio.to_thread(_backup, self.path, Path(target))

    async def schema_version(self) -> int:
        """Return the schema version recorded in the database."""
        async with self.conn.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    def _too_new(self, current: int, known: int) -> StorageError:
        return StorageError(
            f"database schema {current} is newer than this version of skywatch knows "
            f"({known}); upgrade skywatch"
        )

    async def _check_current(self) -> None:
        """Refuse a database whose schema is not this version's (read-only: no migrating)."""
        current, expected = await self.schema_version(), len(migrations())
        if current == 0:
            raise StorageError(f"{self.path} is not a skywatch database (no schema)")
        if current < expected:
            raise StorageError(
                f"database {self.path} has schema {current}, this skywatch expects {expected};"
                " start the service once to upgrade it (review never writes)"
            )
        if current > expected:
            raise self._too_new(current, expected)

    async def _migrate(self) -> None:
        current = await self.schema_version()
        available = migrations()
        if current > len(available):
            raise self._too_new(current, len(available))
        for version, name, sql in available[current:]:
            log.info("applying migration %s", name)
            # executescript commits first; the script itself is one transaction.
            await self.conn.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;"
            )

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """Hold the connection for this task (re-entrant within the task)."""
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            yield
            return
        async with self._lock:
            self._owner = task
            try:
                yield
            finally:
                self._owner = None

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[aiosqlite.Connection]:
        """Read outside any other task's transaction (never its uncommitted rows)."""
        async with self._exclusive():
            yield self.conn

    @asynccontextmanager
    async def savepoint(self, name: str) -> AsyncIterator[aiosqlite.Connection]:
        """Run a block atomically, inside or outside a transaction (SQLite SAVEPOINT)."""
        async with self._exclusive():
            await self.conn.execute(f"SAVEPOINT {name}")
            try:
                yield self.conn
            except BaseException:
                await self.conn.execute(f"ROLLBACK TO {name}")
                await self.conn.execute(f"RELEASE {name}")
                raise
            await self.conn.execute(f"RELEASE {name}")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Run a block in one transaction: committed on success, rolled back on any error."""
        async with self._exclusive():
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            await self.conn.execute("COMMIT")
