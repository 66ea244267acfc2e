"""The SQLite results store (WAL) at ``<out>/results.db`` — an index over the run folders.

Run folders are the source of truth; the store can always be rebuilt from them
(:meth:`Store.rebuild`, ``sparsebench store rebuild OUT``).  Only the grid driver writes the store,
one row per run id (``INSERT OR REPLACE``), each in its own transaction, so a killed driver leaves
either the old or the new row, never half of one.  A store written with another schema version is
rebuilt on open.

Concurrent writers (several drivers on one output folder, ``sparsebench collect`` while a driver
runs) never lose or duplicate a row: SQLite serialises the write transactions (``BEGIN IMMEDIATE``
with a 60 s busy timeout) and the run id is the primary key.  A rebuild replaces the database file,
so it takes an exclusive ``flock`` on ``<out>/.results.lock`` while writers hold it shared: a row
written during a rebuild is never written into the file being replaced.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Iterator

import pandas as pd

from benchmark.runfolder import is_output_error, iter_results, old_format_folders, output_error
from benchmark.schema import BACKFILL, COLUMN_NAMES, COLUMNS, JSON_COLUMNS, SCHEMA_VERSION
from pruners.registry import ConfigError

DB_NAME = "results.db"
LOCK_NAME = ".results.lock"


@contextlib.contextmanager
def _flock(out: Path, exclusive: bool) -> Iterator[None]:
    """Shared (writers) or exclusive (rebuild) advisory lock of an output folder's store."""
    try:
        fd = os.open(Path(out) / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # a read-only or missing folder: nobody can write there, nothing to serialise
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


def _sql_type(t: str) -> str:
    return "TEXT" if t == "JSON" else t


def _row(rec: dict[str, Any]) -> list[Any]:
    row = []
    for name in COLUMN_NAMES:
        v = rec.get(name, BACKFILL.get(name))
        if name in JSON_COLUMNS and v is not None:
            v = json.dumps(v, sort_keys=True)
        elif isinstance(v, bool):
            v = int(v)
        row.append(v)
    return row


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(str(path), timeout=60, isolation_level=None)
    con.execute("PRAGMA busy_timeout = 60000")
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    return con


def _create(con: sqlite3.Connection) -> None:
    cols = ", ".join(f'"{n}" {_sql_type(t)}' + (" PRIMARY KEY" if n == "run_id" else "") for n, t, _, _ in COLUMNS)
    con.execute(f"CREATE TABLE IF NOT EXISTS runs ({cols})")
    con.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
    con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))


class Store:
    """Results of one output folder."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.path = self.out / DB_NAME
        try:
            with _flock(self.out, exclusive=True):
                con = _connect(self.path)
                version = None
                if con.execute("SELECT name FROM sqlite_master WHERE name='meta'").fetchone():
                    r = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                    version = int(r[0]) if r else None
                if version is None:
                    _create(con)
                con.close()
        except sqlite3.DatabaseError as exc:
            if is_output_error(exc, self.out):
                raise output_error(self.out, exc) from None
            raise ConfigError(f"results store {str(self.path)!r} is corrupt ({exc}); run "
                              f"'sparsebench store rebuild {self.out}' to recreate it from the run folders") from None
        if version is not None and version != SCHEMA_VERSION:
            self.rebuild()

    def _con(self) -> sqlite3.Connection:
        return _connect(self.path)

    def upsert(self, records: Iterable[dict[str, Any]]) -> int:
        """Insert or replace rows (one transaction); returns how many were written."""
        rows = [_row(r) for r in records]
        if not rows:
            return 0
        marks = ", ".join("?" for _ in COLUMN_NAMES)
        names = ", ".join(f'"{n}"' for n in COLUMN_NAMES)
        with _flock(self.out, exclusive=False):
            con = self._con()
            try:
                con.execute("BEGIN IMMEDIATE")
                con.executemany(f"INSERT OR REPLACE INTO runs ({names}) VALUES ({marks})", rows)
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
            finally:
                con.close()
        return len(rows)

    def _corrupt(self, exc: sqlite3.DatabaseError) -> ConfigError:
        return ConfigError(f"results store {str(self.path)!r} is damaged ({exc}); run "
                           f"'sparsebench store rebuild {self.out}' to recreate it from the run folders")

    def run_ids(self) -> set[str]:
        con = self._con()
        try:
            return {r[0] for r in con.execute("SELECT run_id FROM runs")}
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from None
        finally:
            con.close()

    def rows(self) -> list[dict[str, Any]]:
        con = self._con()
        try:
            cur = con.execute(f"SELECT {', '.join(chr(34) + n + chr(34) for n in COLUMN_NAMES)} FROM runs ORDER BY run_id")
            out = []
            for row in cur:
                rec = dict(zip(COLUMN_NAMES, row))
                for n in JSON_COLUMNS:
                    if rec[n] is not None:
                        rec[n] = json.loads(rec[n])
                out.append(rec)
            return out
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from None
        finally:
            con.close()

    def dataframe(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows(), columns=COLUMN_NAMES)

    def ingest_folders(self) -> int:
        """Add finished run folders that have no row yet (e.g. after a driver was killed)."""
        have = self.run_ids()
        return self.upsert(r for r in iter_results(self.out) if r["run_id"] not in have)

    def rebuild(self) -> int:
        """Recreate the database from the run folders (atomically); returns the number of rows."""
        with _flock(self.out, exclusive=True):
            return self._rebuild()

    def _rebuild(self) -> int:
        tmp = self.out / f".{DB_NAME}.rebuild-{os.getpid()}"
        for suffix in ("", "-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
        con = _connect(tmp)
        _create(con)
        marks = ", ".join("?" for _ in COLUMN_NAMES)
        names = ", ".join(f'"{n}"' for n in COLUMN_NAMES)
        rows = [_row(r) for r in iter_results(self.out)]
        con.execute("BEGIN")
        con.executemany(f"INSERT OR REPLACE INTO runs ({names}) VALUES ({marks})", rows)
        con.execute("COMMIT")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute("PRAGMA journal_mode = DELETE")
        con.close()
        for suffix in ("-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)
        os.replace(tmp, self.path)
        return len(rows)

    def broken_runs(self) -> list[str]:
        """Finished runs whose files fail :func:`benchmark.verify.deep_problems`."""
        from benchmark.verify import deep_problems

        return [r["run_id"] for r in iter_results(self.out) if deep_problems(self.out / "runs" / r["run_id"], r)]

    def repair(self) -> list[Path]:
        """Move the folders of :meth:`broken_runs` to ``<out>/broken/`` and rebuild the store."""
        from benchmark.verify import move_aside

        moved = [move_aside(self.out, self.out / "runs" / rid) for rid in self.broken_runs()]
        self.rebuild()
        return moved

    def check(self) -> list[str]:
        """Problems of the output folder, each with its fix (empty when consistent): rows and run folders
        that disagree, and finished runs whose files fail :func:`benchmark.verify.deep_problems`."""
        from benchmark.verify import RERUN_HINT, deep_problems

        folders = {r["run_id"]: r for r in iter_results(self.out)}
        broken = []
        for rid, rec in sorted(folders.items()):
            for problem in deep_problems(self.out / "runs" / rid, rec):
                broken.append(f"{rid}: {problem}; {RERUN_HINT.replace('OUT', str(self.out))}")
        rows = {r["run_id"]: r for r in self.rows()}
        problems = [f"{rid}: finished run folder has no row (run 'sparsebench store rebuild {self.out}')" for rid in sorted(set(folders) - set(rows))]
        problems += [f"{rid}: row has no finished run folder" for rid in sorted(set(rows) - set(folders))]
        for rid in sorted(set(folders) & set(rows)):
            if folders[rid].get("status") != rows[rid].get("status") or \
                    folders[rid].get("finished_at") != rows[rid].get("finished_at"):
                problems.append(f"{rid}: row differs from the run folder's result.json; run "
                                f"'sparsebench store rebuild {self.out}'")
        problems += broken
        problems += [f"{f.name}: spec.json has spec format 1 (its run id does not name the task); run "
                     f"'sparsebench store migrate {self.out}' or re-run its grid" for f in old_format_folders(self.out)]
        return problems


def results(out: str | Path = "results") -> pd.DataFrame:
    """All runs of an output folder as a pandas DataFrame (one row per run, schema columns)."""
    out = Path(out)
    if not (out / DB_NAME).exists() and not (out / "runs").is_dir():
        raise ConfigError(f"no results under {str(out)!r}; run a grid first (sparsebench run grids/quick.toml "
                          f"--out {out})")
    from benchmark.verify import quick_problem

    fresh = not (out / DB_NAME).exists()
    store = Store(out)
    if fresh:  # a deleted results.db: the run folders are the source of truth
        store.ingest_folders()
    df = store.dataframe()
    broken = [rid for rid in df["run_id"] if quick_problem(out / "runs" / rid, _result_of(out, rid)) is not None]
    df = df[~df["run_id"].isin(broken)].reset_index(drop=True)
    df.attrs["left_out"] = broken  # finished runs whose files fail their check (shown by 'store check')
    return df


def _result_of(out: Path, run_id: str) -> dict:
    from benchmark.runfolder import read_result, run_dir

    return read_result(run_dir(out, run_id)) or {}


def left_out_note(df: pd.DataFrame, out: str | Path) -> str | None:
    """The line that says how many runs :func:`results` left out, or None."""
    n = len(df.attrs.get("left_out", []))
    if not n:
        return None
    return (f"left out {n} finished run(s) whose files fail their check; 'sparsebench store check {out}' "
            "names them")
