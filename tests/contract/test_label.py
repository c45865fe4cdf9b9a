"""QR labels: the resolver URL of a core's passport id, as a PNG a scanner decodes and an SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
import zxingcpp
from pydantic import ValidationError

from edge.config.station import PassportConfig
from edge.contract import Disposition
from edge.contract.errors import LabelError, NoResolver
from edge.contract.identity import Issuer, resolver_problem
from edge.contract.label import core_url, qr_label, qr_png, qr_svg
from edge.contract.passport import build_passport
from gateway.config import SiteConfig
from tests.support.journal_records import make_record

GS1 = Issuer(id_template="https://id.example.com/01/09506000134352/21/{core_id}")
URN = Issuer(
    id_template="urn:reman:{operator}:{core_id}",
    operator_id="example-reman",
    resolver_url_template="https://passport.example.com/{id}",
)


def passport_of(core_id: str) -> dict:
    record = make_record(1, core_id, Disposition.REUSE, family="hydraulic-gear-pump")
    return build_passport([record], core_id)


def decoded(png: bytes) -> list[str]:
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert image is not None, "not a PNG"
    return [r.text for r in zxingcpp.read_barcodes(image)]


@pytest.mark.parametrize(
    ("issuer", "url"),
    [
        (GS1, "https://id.example.com/01/09506000134352/21/HGP-7%2FA"),
        (URN, "https://passport.example.com/urn%3Areman%3Aexample-reman%3AHGP-7%252FA"),
    ],
)
def test_the_png_decodes_to_the_ids_resolver_url(issuer, url):
    assert core_url(passport_of("HGP-7/A"), issuer) == url
    png = qr_png(url)
    assert decoded(png) == [url]
    assert decoded(qr_label(url, "png")) == [url]


def test_the_png_fits_a_25_mm_label_at_300_dpi():
    image = cv2.imdecode(np.frombuffer(qr_png(URN.resolver_url("urn:x:y")), np.uint8), 0)
    height, width = image.shape
    assert height == width and 200 <= width <= 295  # 25 mm at 300 dpi is 295 px
    # the quiet zone: 4 white modules round the code (the top-left finder starts after them)
    first_dark = int(np.argmax(image[height // 8] < 128))
    assert first_dark >= 4 * 5


def test_the_svg_is_25_mm_wide_with_the_core_id_under_the_code():
    svg = qr_svg("https://passport.example.com/x", "HGP-000123")
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("width") == "25mm" and root.get("height", "").endswith("mm")
    assert float(root.get("height", "0")[:-2]) > 25  # room for the caption
    [text] = root.iter("{http://www.w3.org/2000/svg}text")
    assert text.text == "HGP-000123"
    assert (
        qr_label("https://passport.example.com/x", "svg", "C<1>").decode().count("C&lt;1&gt;") == 1
    )


def test_a_urn_without_a_resolver_gets_no_label_but_a_message():
    issuer = Issuer()  # the default template makes URNs
    assert not issuer.labels_resolve and URN.labels_resolve and GS1.labels_resolve
    with pytest.raises(NoResolver, match="resolver_url_template"):
        core_url(passport_of("C1"), issuer)


def test_other_formats_and_overlong_urls_are_label_errors():
    with pytest.raises(LabelError, match="png or svg"):
        qr_label("https://x.example", "pdf")
    with pytest.raises(LabelError, match="too long"):
        qr_png("https://x.example/" + "a" * 3000)


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("ftp://passport.example.com/{id}", "https://"),
        ("https://passport.example.com/", "{id}"),
        ("https://passport.example.com/{id}/{core_id}", "{id}"),
        ("https://passport.example.com/{id", "unbalanced"),
    ],
)
def test_an_unusable_resolver_template_is_refused_in_both_configs(template, problem):
    assert problem in (resolver_problem(template) or "")
    for section in (PassportConfig, SiteConfig):
        with pytest.raises(ValidationError, match="resolver_url_template"):
            section.model_validate({"resolver_url_template": template})
