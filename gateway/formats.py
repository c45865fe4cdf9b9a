"""Times and numbers as a page shows them: in the gateway's time zone and the reader's language.

Stored times are UTC (RFC 3339); a page shows them in the configured zone, with the UTC time
in the element's title, and exports (CSV, API) keep UTC. English keeps the figures the
dashboard always showed (2026-11-28 09:00:00, 1,234.5, 50.0 %); Dutch and German get their
own date order and separators through Babel.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime
from babel.numbers import format_decimal
from markupsafe import Markup, escape

from edge.contract.timefmt import rfc3339

DATE_TIME = {"en": "yyyy-MM-dd HH:mm:ss", "nl": "dd-MM-yyyy HH:mm:ss", "de": "dd.MM.yyyy HH:mm:ss"}
TIME = "HH:mm:ss"


def host_timezone() -> str:
    """The host's IANA zone name: $TZ, else /etc/localtime's target, else /etc/timezone; UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    localtime = Path("/etc/localtime")
    if localtime.is_symlink():
        target = str(localtime.resolve())
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    try:
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    except OSError:
        pass
    for name in candidates:
        if name and is_zone(name):
            return name
    return "UTC"


def is_zone(name: str) -> bool:
    """Whether `name` is an IANA time zone this host knows."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def parse_utc(ts: str) -> datetime | None:
    """A stored RFC 3339 time as an aware datetime; None when it is empty or not a time."""
    try:
        moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo("UTC"))


def local_time(ts: str | None, zone: ZoneInfo, language: str, with_date: bool = True) -> Markup:
    """`<time>` showing `ts` in `zone` for `language`, its UTC time in the title; '' when none."""
    moment = parse_utc(ts) if ts else None
    if moment is None:
        return Markup(escape(ts or ""))
    pattern = DATE_TIME.get(language, DATE_TIME["en"]) if with_date else TIME
    shown = format_datetime(moment, pattern, tzinfo=zone, locale=language)
    utc = moment.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%d %H:%M:%S UTC")
    iso = rfc3339(moment)
    return Markup(f'<time datetime="{iso}" title="{utc}">{escape(shown)}</time>')


def local_input(ts: str | None, zone: ZoneInfo) -> str:
    """A stored UTC time as a datetime-local form field shows it in `zone` (2026-11-28T10:00)."""
    moment = parse_utc(ts) if ts else None
    return moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M") if moment else ""


def number(value: float | int, language: str, digits: int = 1) -> str:
    """`value` with `digits` decimals and grouped thousands, as `language` writes numbers."""
    if language == "en":
        return f"{value:,.{digits}f}"
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(value, pattern, locale=language)


def decimal(value: float | int, language: str) -> str:
    """A measured value as the station sent it (up to three decimals in nl and de)."""
    return str(value) if language == "en" else format_decimal(value, locale=language)


def count(value: int, language: str) -> str:
    """A whole number with grouped thousands."""
    return number(value, language, 0)


def percent(share: float, language: str) -> str:
    """A share (0..1) as a percentage with one decimal, e.g. 50.0 % (50,0 % in nl and de)."""
    return f"{number(share * 100, language, 1)} %"
