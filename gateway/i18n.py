"""The dashboard's languages: gettext catalogues, the language a request is shown in, messages.

    LANGUAGES                     the languages a page can be shown in, English first (the default)
    Catalogues.load()             every catalogue under gateway/locale, compiled in memory
    choose_language(request, user) the session's choice, else the user's, else Accept-Language
    Message("no inspection {id}", id=...)  an English error text that a page shows translated

The catalogues are gettext .po files (gateway/locale/<lang>/LC_MESSAGES/messages.po), compiled
to GNUTranslations when the gateway starts, so no binary .mo file is kept beside them.
`python -m gateway.i18n extract` collects every message from the templates and the Python
modules and adds new ones to each catalogue (existing translations stay); `check` lists the
messages a catalogue lacks.
"""

from __future__ import annotations

import gettext
import io
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

HERE = Path(__file__).resolve().parent
LOCALE_DIR = HERE / "locale"
LANGUAGES = ("en", "nl", "de")
"""English is the source language and the default; its catalogue only names the messages."""
LANGUAGE_NAMES = {"en": "English", "nl": "Nederlands", "de": "Deutsch"}
DOMAIN = "messages"
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "Message": None}
METHODS = [
    ("templates/**.html", "jinja2.ext:babel_extract"),
    ("**.py", "python"),
]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}}


def N_(message: str) -> str:
    """Mark `message` for extraction; it is translated where it is shown."""
    return message


DEFECT_NAMES = {
    "wear": N_("wear"),
    "corrosion": N_("corrosion"),
    "coating_damage": N_("coating damage"),
}
"""Defect types as a page names them; the machine names stay in records, CSV and API."""

EVENT_TEXT = {
    "ack_ignored": N_("PLC acknowledgement from the other source ignored"),
    "ack_late": N_("PLC acknowledged late"),
    "ack_repeated": N_("PLC acknowledged twice"),
    "ack_timeout": N_("No PLC acknowledgement"),
    "ack_unknown": N_("PLC acknowledged an unknown result"),
    "bench_connect_failed": N_("Bench connection failed"),
    "bench_connected": N_("Bench connected"),
    "bench_connecting": N_("Connecting to the bench"),
    "bench_disconnected": N_("Bench disconnected"),
    "bench_poll_fallback": N_("Bench polled instead of subscribed"),
    "bench_stopped": N_("Bench client stopped"),
    "bench_trigger_dropped": N_("Bench trigger dropped"),
    "bench_unit_mismatch": N_("Bench unit does not match"),
    "bench_unknown_node": N_("Unknown bench node"),
    "bench_writeback_failed": N_("Writing to the bench failed"),
    "bench_writeback_gave_up": N_("Writing to the bench given up"),
    "bench_writeback_recovered": N_("Writing to the bench works again"),
    "bench_writeback_timeout": N_("Writing to the bench timed out"),
    "broker_connected": N_("Broker connected"),
    "broker_connecting": N_("Connecting to the broker"),
    "broker_disconnected": N_("Broker disconnected"),
    "broker_refused": N_("Broker refused the connection"),
    "broker_unreachable": N_("Broker unreachable"),
    "camera_failed": N_("Camera failed"),
    "camera_recovered": N_("Camera working again"),
    "clock_skew": N_("Bench clock differs from the station's"),
    "clock_skew_recovered": N_("Bench clock agrees again"),
    "command_failed": N_("Command failed"),
    "command_rejected": N_("Command rejected"),
    "frame_refused": N_("Photograph refused"),
    "grading_failed": N_("Grading failed"),
    "housekeeping_failed": N_("Housekeeping failed"),
    "image_out_of_distribution": N_("Image unlike the training images"),
    "image_unreadable": N_("Image unreadable"),
    "images_not_written": N_("Images not written"),
    "inspection_failed": N_("Inspection failed"),
    "inspection_interrupted": N_("Inspection interrupted"),
    "inspection_not_recorded": N_("Inspection not recorded"),
    "journal_inconsistent": N_("Journal inconsistent"),
    "journal_unreadable": N_("Journal unreadable"),
    "label_recorded": N_("Label recorded"),
    "label_rejected": N_("Label rejected"),
    "message_refused": N_("Message from the station refused"),
    "node_clock_offset": N_("Station clock differs from the gateway's"),
    "node_clock_ok": N_("Station clock agrees with the gateway's again"),
    "model_added": N_("Model added"),
    "model_promoted": N_("Model promoted"),
    "model_refused": N_("Model refused"),
    "model_rolled_back": N_("Model rolled back"),
    "model_shadow_ended": N_("Shadow model ended"),
    "model_shadowed": N_("Model runs in shadow"),
    "model_synthetic_only": N_("Model trained on synthetic data only"),
    "model_without_input_summary": N_("Model has no input summary"),
    "models_unreadable": N_("Model registry unreadable"),
    "node_started": N_("Node started"),
    "outbox_expired": N_("Outbox messages expired"),
    "outbox_full": N_("Outbox full"),
    "outbox_sync_failed": N_("Outbox sync failed"),
    "override_applied": N_("Override applied"),
    "override_rejected": N_("Override rejected"),
    "publish_refused": N_("Publish refused"),
    "publish_unsendable": N_("Message cannot be sent"),
    "publisher_failed": N_("Publisher failed"),
    "records_missing": N_("Inspections missing"),
    "records_resent": N_("Inspections sent again"),
    "result_unreadable": N_("Result unreadable"),
    "shadow_failed": N_("Shadow model failed"),
    "shadow_not_loaded": N_("Shadow model not loaded"),
    "sparkplug_command_refused": N_("Sparkplug command refused"),
    "sparkplug_connected": N_("Sparkplug connected"),
    "sparkplug_disconnected": N_("Sparkplug disconnected"),
    "sparkplug_host_offline": N_("Sparkplug primary host offline"),
    "sparkplug_host_online": N_("Sparkplug primary host online"),
    "sparkplug_rebirth": N_("Sparkplug rebirth"),
    "sparkplug_refused": N_("Sparkplug connection refused"),
    "sparkplug_state_invalid": N_("Sparkplug host state unreadable"),
    "stopped": N_("Node stopped"),
    "task_failed": N_("Task failed"),
    "trigger_dropped": N_("Trigger dropped"),
}
"""What a station event means, per stable event code; the code itself stays as it is."""

REASON_TEXT = {
    "in_spec": N_("All grades and measurements within limits"),
    "unknown_family": N_("No product family matches this core"),
    "defect_missing": N_("A grade is missing"),
    "not_a_number": N_("A value is not a number"),
    "unknown_scale": N_("Unknown grade table"),
    "low_confidence": N_("The model is not confident enough"),
    "image_quality": N_("Image quality problem"),
    "image_corrupt": N_("Image unreadable"),
    "out_of_distribution": N_("Image unlike the training images"),
    "measurement_missing": N_("A measurement is missing"),
    "measurement_stale": N_("A measurement is stale"),
    "measurement_bad_quality": N_("A measurement is of bad quality"),
    "unit_mismatch": N_("A measurement has the wrong unit"),
    "bench_unavailable": N_("No current bench measurements"),
    "core_id_invalid": N_("A core id read is not valid"),
    "core_id_ambiguous": N_("Labels name several cores"),
    "core_id_missing": N_("No core id read"),
    "inspection_failed": N_("Inspection failed"),
    "inspection_interrupted": N_("Inspection interrupted"),
}
"""What a decision reason means, per stable reason code (the node's own text follows it)."""

RULE_TEXT = {
    "remanufacture_at": N_("Grade at or above the remanufacture limit"),
    "recycle_at": N_("Grade at or above the recycle limit"),
    "min": N_("Measurement below its range"),
    "max": N_("Measurement above its range"),
    "recycle_below": N_("Measurement below the recycle limit"),
    "recycle_above": N_("Measurement above the recycle limit"),
}
"""What a grade or measurement limit that fired means, by the last part of its rule
(grades.wear.recycle_at, measurements.pressure.min); a family's own rules keep their text."""


def reason_title(code: str, rule: str | None) -> str | None:
    """The English title of a reason (to translate), or None for a family's own rule."""
    if rule and rule.startswith(("grades.", "measurements.")):
        return RULE_TEXT.get(rule.rsplit(".", 1)[-1])
    return REASON_TEXT.get(code)


SHOWN_NAMES = (
    # dispositions: the codes stay REUSE..REVIEW in data, CSV and API; pages translate them
    N_("NONE"),
    N_("REUSE"),
    N_("REMANUFACTURE"),
    N_("RECYCLE"),
    N_("REVIEW"),
    # roles, station states, credit tiers, event levels, measurement statuses
    N_("operator"),
    N_("engineer"),
    N_("admin"),
    N_("online"),
    N_("offline"),
    N_("unknown"),
    N_("full"),
    N_("partial"),
    N_("none"),
    N_("error"),
    N_("warning"),
    N_("info"),
    N_("Good"),
    N_("Missing"),
    N_("Stale"),
    # model command states
    N_("pending"),
    N_("confirmed"),
    N_("refused"),
)
"""Names that pages show from data through `_()`, listed here so that extraction finds them."""


class Message(str):
    """An English text with named fields that the error page shows in the reader's language.

    It is a str (the English text, formatted), so the API and logs read it as before.
    """

    msgid: str
    fields: dict[str, Any]

    def __new__(cls, msgid: str, **fields: Any) -> Message:
        text = super().__new__(cls, msgid.format(**fields))
        text.msgid = msgid
        text.fields = fields
        return text

    def in_language(self, translations: gettext.NullTranslations) -> str:
        """The text in the language of `translations`."""
        return translations.gettext(self.msgid).format(**self.fields)


def translate(detail: object, translations: gettext.NullTranslations) -> object:
    """A Message in the language of `translations`; any other detail as it is."""
    return detail.in_language(translations) if isinstance(detail, Message) else detail


class Catalogues:
    """Compiled translations per language; unknown languages get English."""

    def __init__(self, translations: dict[str, gettext.NullTranslations]):
        self._translations = translations

    @classmethod
    def load(cls, locale_dir: Path = LOCALE_DIR) -> Catalogues:
        """Read and compile every language's .po file (English needs none)."""
        found: dict[str, gettext.NullTranslations] = {"en": gettext.NullTranslations()}
        for lang in LANGUAGES[1:]:
            found[lang] = compile_po(po_path(lang, locale_dir))
        return cls(found)

    def get(self, language: str | None) -> gettext.NullTranslations:
        """The translations of `language` (English when it is not one of LANGUAGES)."""
        return self._translations.get(language or "en", self._translations["en"])


def po_path(language: str, locale_dir: Path = LOCALE_DIR) -> Path:
    """Where `language`'s catalogue lives."""
    return locale_dir / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def compile_po(path: Path) -> gettext.GNUTranslations:
    """A .po file compiled in memory (fuzzy entries are left out, as msgfmt does)."""
    with path.open("rb") as f:
        catalog = read_po(f)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def parse_accept_language(header: str | None) -> list[str]:
    """The primary language tags of an Accept-Language header, most preferred first."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag and q > 0:
            ranked.append((-q, i, tag.split("-")[0].lower()))
    return [tag for _, _, tag in sorted(ranked)]


def choose_language(
    session_language: str | None, user_language: str | None, accept: str | None
) -> str:
    """The session's choice, else the user's configured language, else the browser's, else en."""
    for lang in (session_language, user_language, *parse_accept_language(accept)):
        if lang in LANGUAGES:
            return lang
    return "en"


def extract(root: Path = HERE) -> Catalog:
    """Every message in the gateway's templates and Python modules."""
    catalog = Catalog(project="reman-edge gateway", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
        root, METHODS, OPTIONS, KEYWORDS, strip_comment_tags=True
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def update(template: Catalog, locale_dir: Path = LOCALE_DIR) -> None:
    """Add the template's new messages to each catalogue, keep translations, drop old ones."""
    for lang in LANGUAGES[1:]:
        path = po_path(lang, locale_dir)
        if path.exists():
            with path.open("rb") as f:
                catalog = read_po(f, locale=lang)
        else:
            catalog = Catalog(locale=lang, project="reman-edge gateway")
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        catalog.fuzzy = False  # the header is complete; a fuzzy one reads as a draft
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            write_po(f, catalog, omit_header=False, sort_output=True, width=100)


def missing(template: Catalog, locale_dir: Path = LOCALE_DIR) -> dict[str, list[str]]:
    """Per language, the messages without a translation (absent, empty or fuzzy)."""
    result: dict[str, list[str]] = {}
    for lang in LANGUAGES[1:]:
        with po_path(lang, locale_dir).open("rb") as f:
            catalog = read_po(f, locale=lang)
        result[lang] = [
            str(m.id) for m in template if m.id and _untranslated(catalog.get(m.id, m.context))
        ]
    return result


def _untranslated(message) -> bool:
    if message is None or message.fuzzy:
        return True
    strings: Iterable[str] = (
        message.string if isinstance(message.string, tuple) else [message.string]
    )
    return not all(strings)


def main(argv: list[str]) -> int:
    """`extract`: update the catalogues from the sources; `check`: list untranslated messages."""
    if argv[:1] == ["extract"]:
        update(extract())
        return 0
    if argv[:1] == ["check"]:
        gaps = missing(extract())
        for lang, ids in gaps.items():
            for msgid in ids:
                print(f"{lang}: {msgid!r}")
        return 1 if any(gaps.values()) else 0
    print("usage: python -m gateway.i18n extract|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
