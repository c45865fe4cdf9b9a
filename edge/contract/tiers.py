"""Who may see which part of a core's passport: public, legitimate interest, authority.

    restrict(passport, "public")   the passport record with only what that tier may see

One passport, three views of it, as the EU Battery Regulation (Art. 77, Annex XIII) orders the
battery passport's information and as other product passports follow:

    public               who made the decision and where (operator, facility), the persistent id,
                         dates, the current status on the R-ladder, the predecessor's passport
                         id, the environmental figures with their method, and for a battery its
                         status and rated values
    legitimate_interest  also every inspection: grades, bench measurements, reasons, model and
                         rules versions, image hashes, and overrides without who made them or why;
                         for a battery its measured state of health
    authority            everything, the overrides' users and reasons included

The record's own keys decide; anything a later passport adds that no tier names is kept from
the public and legitimate-interest views (a new field is private until it is placed here).
"""

from __future__ import annotations

from typing import Any

TIERS = ("public", "legitimate_interest", "authority")

PUBLIC_KEYS = (
    "passport_schema",
    "unique_identifier",
    "operator",
    "dates",
    "status",
    "predecessor",
    "circularity",
    "battery",
)
LEGITIMATE_KEYS = (*PUBLIC_KEYS, "inspections")

PUBLIC_BATTERY_KEYS = (
    "battery_status",
    "operation",
    "original_passport_id",
    "rated_capacity_ah",
    "rated_resistance_mohm",
    "unknown",
)
"""Battery facts anybody may read; state of health and measured values need legitimate interest."""

PRIVATE_OVERRIDE_KEYS = ("user", "reason")
"""What an override says about a person; only an authority sees it."""


def rank(tier: str) -> int:
    """0 for public, 1 for legitimate interest, 2 for authority; ValueError for another name."""
    try:
        return TIERS.index(tier)
    except ValueError:
        raise ValueError(f"unknown passport tier {tier!r}: one of {', '.join(TIERS)}") from None


def restrict(passport: dict[str, Any], tier: str) -> dict[str, Any]:
    """The passport record as `tier` may see it (a new dict; the argument is unchanged)."""
    level = rank(tier)
    if level == 2:
        return {**passport, "tier": tier}
    keys = PUBLIC_KEYS if level == 0 else LEGITIMATE_KEYS
    shown = {k: v for k, v in passport.items() if k in keys}
    if "battery" in shown and level == 0 and isinstance(shown["battery"], dict):
        shown["battery"] = {k: v for k, v in shown["battery"].items() if k in PUBLIC_BATTERY_KEYS}
    if "inspections" in shown:
        shown["inspections"] = [_without_people(i) for i in shown["inspections"]]
    shown["tier"] = tier
    return shown


def _without_people(inspection: dict[str, Any]) -> dict[str, Any]:
    out = dict(inspection)
    if isinstance(out.get("override"), dict):
        out["override"] = _anonymous(out["override"])
    if isinstance(out.get("overrides"), list):
        out["overrides"] = [_anonymous(o) for o in out["overrides"] if isinstance(o, dict)]
    return out


def _anonymous(override: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in override.items() if k not in PRIVATE_OVERRIDE_KEYS}
