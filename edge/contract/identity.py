"""A core's persistent, globally unique id, made from the site's id template.

The template is a GS1 Digital Link URI (`https://id.example.com/01/{gtin}/21/{core_id}`) or a
URN (`urn:reman:{operator}:{core_id}`). Placeholders: `core_id` (required), `operator` and
`facility` (the site's operator and facility ids), `family`, `part_number` and `gtin`. Values are
percent-encoded, so a core id with `/` or `:` stays one path segment. A placeholder whose value
is unknown is an error, never an empty segment: an id must not change once it is on a label.

What a QR label encodes is the id's resolver URL (`Issuer.resolver_url`): a GS1 Digital Link id
is already one; a URN is resolved by the site's `resolver_url_template`
(`https://passport.example.com/{id}`, the URN percent-encoded), and without one it has no URL.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from edge.contract.errors import NoResolver, PassportIdError

PLACEHOLDERS = ("core_id", "operator", "facility", "family", "part_number", "gtin")
DEFAULT_ID_TEMPLATE = "urn:reman-edge:core:{core_id}"
_SCHEMES = ("https://", "http://", "urn:")
_URL_SCHEMES = ("https://", "http://")


def template_problem(template: str) -> str | None:
    """What is wrong with an id template, or None when it can make ids."""
    if not template.startswith(_SCHEMES):
        return "an id template is an https:// URI (GS1 Digital Link) or a urn:"
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        return f"unbalanced braces: {exc}"
    unknown = sorted(set(names) - set(PLACEHOLDERS))
    if unknown:
        return f"unknown placeholder(s) {unknown}; known: {list(PLACEHOLDERS)}"
    if "core_id" not in names:
        return "the template needs {core_id}, or two cores would share an id"
    return None


def resolver_problem(template: str) -> str | None:
    """What is wrong with a resolver URL template, or None when it can make URLs."""
    if not template.startswith(_URL_SCHEMES):
        return "a resolver URL template is an https:// (or http://) URL"
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        return f"unbalanced braces: {exc}"
    if names != ["id"]:
        return "a resolver URL template has one placeholder, {id} (the core's URN), and no other"
    return None


@dataclass(frozen=True)
class Issuer:
    """Who issues the passports and how their ids are made (from the site config)."""

    id_template: str = DEFAULT_ID_TEMPLATE
    operator: str | None = None
    operator_id: str | None = None
    facility: str | None = None
    facility_id: str | None = None
    resolver_url_template: str | None = None

    def core_uri(self, core_id: str, facts: Mapping[str, str | None] | None = None) -> str:
        """The core's persistent id; `facts` fills `family`, `part_number` and `gtin`.

        Raises PassportIdError when the template is unusable or a placeholder's value is unknown.
        """
        problem = template_problem(self.id_template)
        if problem:
            raise PassportIdError(f"site id template {self.id_template!r}: {problem}")
        values = {
            "core_id": core_id,
            "operator": self.operator_id,
            "facility": self.facility_id,
            **(facts or {}),
        }
        return self.id_template.format_map(_Encoded(values, self.id_template))

    @property
    def labels_resolve(self) -> bool:
        """Whether this site's ids have a URL to put on a label (an http(s) id or a resolver)."""
        return self.id_template.startswith(_URL_SCHEMES) or bool(self.resolver_url_template)

    def resolver_url(self, core_uri: str) -> str:
        """The URL a QR label encodes for the core's persistent id `core_uri`.

        An http(s) id (GS1 Digital Link) is its own URL; a URN goes into the resolver URL
        template, percent-encoded. Raises NoResolver for a URN when the site has no resolver.
        """
        if core_uri.startswith(_URL_SCHEMES):
            return core_uri
        template = self.resolver_url_template
        if not template:
            raise NoResolver(
                f"{core_uri} is a URN, which a phone cannot open: set the site's "
                "resolver_url_template (https://.../{id}) or a GS1 Digital Link id_template"
            )
        problem = resolver_problem(template)
        if problem:
            raise NoResolver(f"site resolver URL template {template!r}: {problem}")
        return template.format(id=quote(core_uri, safe=""))


class _Encoded(dict[str, str]):
    """Percent-encoded placeholder values; a missing one raises PassportIdError."""

    def __init__(self, values: Mapping[str, str | None], template: str):
        super().__init__({k: quote(v, safe="") for k, v in values.items() if v})
        self.template = template

    def __missing__(self, key: str) -> str:
        raise PassportIdError(f"id template {self.template!r} needs {{{key}}}, which is not known")
