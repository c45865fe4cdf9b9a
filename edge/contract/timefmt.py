"""UTC timestamps in one text form (RFC 3339, milliseconds, a Z), so stores compare them as strings.

The node, the journal, the gateway store and the pages all write times with `rfc3339`; anything
read from outside goes through `parse_ts` or `normalize_ts` first.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo

UTC = timezone.utc  # datetime.UTC is Python 3.11+; JetPack 6 runs 3.10


def rfc3339(moment: datetime) -> str:
    """A datetime as UTC RFC 3339 with milliseconds and a Z (`2026-11-28T15:52:56.123Z`)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def utc_now() -> str:
    """Now in that form."""
    return rfc3339(datetime.now(UTC))


def parse_ts(text: str, naive: tzinfo = UTC) -> datetime:
    """An RFC 3339 / ISO 8601 time as an aware UTC datetime (naive input is in zone `naive`)."""
    text = text.strip()
    if text[-1:] in ("Z", "z"):  # Python 3.10's fromisoformat does not read the Z
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=naive)
    return moment.astimezone(UTC)


def normalize_ts(text: str, naive: tzinfo = UTC) -> str:
    """Any RFC 3339 time in this form (naive input in zone `naive`); ValueError if not a time."""
    if _CANONICAL.fullmatch(text):  # already in this form (what nodes send): only check it
        datetime.fromisoformat(text[:-1])
        return text
    return rfc3339(parse_ts(text, naive))


_CANONICAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def ago_ts(**delta: float) -> str:
    """Now minus a timedelta(**delta), in this form."""
    return rfc3339(datetime.now(UTC) - timedelta(**delta))
