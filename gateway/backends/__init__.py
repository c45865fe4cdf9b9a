"""The gateway store's two backends: SQLite (the default, one file beside the gateway) and
PostgreSQL (a plant's shared server), behind one small interface that gateway.store uses.

    Database      a backend: rows(sql, params), transaction(), close(), its dialect and errors
    Transaction   what a write sees inside one transaction: execute, executemany
    Dialect       the few places where the two SQL dialects differ
    SearchPlan    how a dialect reads a page of a search

Every statement is written once, with `?` placeholders and SQL that both engines read the same
way (`ON CONFLICT ... DO NOTHING`, row-value comparisons, `substr` on RFC 3339 text); a backend
turns the placeholders into its own. Times stay TEXT in both (RFC 3339 in UTC), so the keyset
comparisons and the reports' buckets are string operations that give the same answer on each.

This package may import gateway.errors, sqlite_utils, psycopg and psycopg_pool; gateway.store
and the modules that keep tables in the store (gateway.models_store, gateway.tokens) build on
it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol


class Dialect(Protocol):
    """SQL that differs between the engines, as fragments to put into a statement."""

    name: str
    limit_all: str
    """A LIMIT that takes every row (before an OFFSET)."""

    def greatest(self, first: str, second: str) -> str:
        """The larger of two expressions."""
        ...

    def json_field(self, expr: str, key: str) -> str:
        """The member `key` of the JSON text (or value) `expr`, as a scalar."""
        ...

    def json_each(self, expr: str, key: str) -> str:
        """A table of (key, value) for the members of the object at `key` in JSON `expr`."""
        ...

    def search(self, text: str) -> tuple[str, list[Any]]:
        """Condition on `inspections` that its core id or reasons hold every word of `text` as
        a word prefix, and its parameters."""
        ...

    def search_pages(self, searching: bool, few: bool) -> list[SearchPlan]:
        """How to read one page of inspections, in order, until one gives a full page (the
        last one's answer stands); empty: the plain keyset query. `searching`: the filter has a
        search text; `few`: it is known to match at most the store's count cap."""
        ...


@dataclass(frozen=True)
class SearchPlan:
    """One way to read a page of a search: a statement built from the filters' SQL, with the
    parameter groups in the order its placeholders take them."""

    template: str
    """With {base} (the filters but the search), {search}, {after} (the cursor), {order}."""
    params: tuple[str, ...]
    """"base", "search" and "after", in placeholder order (the page's LIMIT comes last)."""

    def sql(self, base: str, search: str, after: str, order: str) -> tuple[str, tuple[str, ...]]:
        """The statement and its parameter groups."""
        return self.template.format(base=base, search=search, after=after, order=order), self.params


class Transaction(Protocol):
    """Statements inside one transaction."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters."""
        ...


class Database(Protocol):
    """One backend's connections."""

    dialect: Dialect
    errors: tuple[type[Exception], ...]
    """The driver's errors, which gateway.store raises as StoreError."""

    def rows(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        """Rows of one query, as dicts."""
        ...

    def transaction(self) -> AbstractContextManager[Transaction]:
        """A transaction, committed when the block ends and rolled back when it raises."""
        ...

    def close(self) -> None:
        """Close the connections (a later call opens new ones)."""
        ...
