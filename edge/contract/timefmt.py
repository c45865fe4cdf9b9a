"""UTC timestamps in one sortable text form, so the store can compare them as strings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def parse_ts(text: str) -> datetime:
    """An RFC 3339 / ISO 8601 time as an aware UTC datetime (naive input is taken as UTC)."""
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def fmt_ts(moment: datetime) -> str:
    """The store's form: UTC, milliseconds, a Z (`2026-11-28T15:52:56.123Z`)."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def normalize_ts(text: str) -> str:
    """Any RFC 3339 time in the store's form; raise ValueError when it is not a time."""
    return fmt_ts(parse_ts(text))


def now_ts() -> str:
    """Now in the store's form."""
    return fmt_ts(datetime.now(UTC))


def ago_ts(**delta: float) -> str:
    """Now minus a timedelta(**delta), in the store's form."""
    return fmt_ts(datetime.now(UTC) - timedelta(**delta))
