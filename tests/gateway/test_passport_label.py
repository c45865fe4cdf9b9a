"""The passport label on the detail page: its PNG and SVG links download a QR code of the id's URL."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import cv2
import httpx
import numpy as np
import zxingcpp

from gateway.config import SiteConfig
from gateway.server import Gateway
from gateway.store import Batch, Store
from tests.gateway.conftest import login, make_config
from tests.gateway.records import record

CORE = record(station="st-a", core_id="HGP-7/A", code=1)
RESOLVER = "https://passport.example.com/{id}"
URL = "https://passport.example.com/urn%3Areman%3Aexample-reman%3AHGP-7%252FA"


def gateway_with(tmp_path, **site) -> Gateway:
    """A gateway over a store holding CORE, its site's passport settings `site`."""
    config = make_config(tmp_path)
    config = config.model_copy(update={"site": SiteConfig.model_validate(site)})
    store = Store(tmp_path / "labels.db")
    store.write(Batch(inspections=[CORE]))
    return Gateway(config, store=store, mqtt=False)


def label_links(html: str) -> dict[str, str]:
    """The passport label's links on a detail page, by format."""
    match = re.search(r'<dd id="passport-label">(.*?)</dd>', html, re.S)
    assert match, "the detail page has no passport label"
    return {href[-3:]: href for href in re.findall(r'href="([^"]+)"', match.group(1))}


def test_the_detail_pages_label_links_download_a_png_and_an_svg(tmp_path):
    site = {"id_template": "urn:reman:{operator}:{core_id}", "operator_id": "example-reman"}
    with gateway_with(tmp_path, **site, resolver_url_template=RESOLVER) as gw:
        erin = login(gw.url, "erin")
        links = label_links(erin.get(f"/inspections/st-a/{CORE.id}").text)
        png, svg = erin.get(links["png"]), erin.get(links["svg"])
        operator = login(gw.url, "olly").get(links["png"]).status_code
        nobody = httpx.get(gw.url + links["png"]).status_code
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert 'filename="HGP-7_A-label.png"' in png.headers["content-disposition"]
    image = cv2.imdecode(np.frombuffer(png.content, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert [r.text for r in zxingcpp.read_barcodes(image)] == [URL]
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert ET.fromstring(svg.text).get("width") == "25mm"
    assert operator == 200  # whoever may view may print a label
    assert nobody == 401  # the API needs a session or a token


def test_a_urn_site_without_a_resolver_shows_why_there_is_no_label(tmp_path):
    with gateway_with(tmp_path) as gw:
        erin = login(gw.url, "erin")
        html = erin.get(f"/inspections/st-a/{CORE.id}", headers={"Accept-Language": "de"}).text
        refused = erin.get("/api/cores/HGP-7%2FA/passport/qr.png")
        unknown = erin.get("/api/cores/NOPE/passport/qr.png")
        other = erin.get("/api/cores/HGP-7%2FA/passport/qr.pdf")
    assert label_links(html) == {}
    assert "Produktpass-Etikett" in html
    assert refused.status_code == 409 and "resolver_url_template" in refused.json()["detail"]
    assert unknown.status_code == 404 and other.status_code == 404
