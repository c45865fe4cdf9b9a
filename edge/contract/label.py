"""A core's QR label: its passport id's resolver URL as a QR code, PNG or SVG, at label size.

The code is made with segno at error correction level M with a quiet zone of 4 modules (what
ISO/IEC 18004 asks for). The PNG is sized for a square label (25 mm at 300 dpi by default): the
largest whole number of pixels per module that fits, so modules stay sharp on a thermal printer.
The SVG is scalable, `label_mm` wide, with the core id printed under the code.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

import segno

from edge.contract import aas
from edge.contract.errors import LabelError
from edge.contract.identity import Issuer

FORMATS = ("png", "svg")
LABEL_MM = 25.0
DPI = 300
QUIET_ZONE = 4  # modules, as ISO/IEC 18004 asks
_MM_PER_INCH = 25.4


def core_url(passport: Mapping[str, Any], issuer: Issuer) -> str:
    """The URL a core's label encodes: the resolver URL of its passport's `globalAssetId`.

    The id is read from the passport's own shell, so label and passport cannot disagree.
    Raises PassportIdError (NoResolver for a URN without a resolver) when there is no URL.
    """
    shell = aas.shell_of(aas.build_environment(passport, issuer))
    asset_id = shell.asset_information.global_asset_id
    assert asset_id is not None  # build_environment always sets it
    return issuer.resolver_url(asset_id)


def qr_png(url: str, *, label_mm: float = LABEL_MM, dpi: int = DPI) -> bytes:
    """A PNG of the QR code of `url`, at most `label_mm` square at `dpi` (the PNG says its dpi)."""
    qr = _qr(url)
    modules = qr.symbol_size(border=QUIET_ZONE)[0]
    scale = max(1, int(label_mm / _MM_PER_INCH * dpi) // modules)
    out = io.BytesIO()
    qr.save(out, kind="png", scale=scale, border=QUIET_ZONE, dpi=dpi)
    return out.getvalue()


def qr_svg(url: str, caption: str | None = None, *, label_mm: float = LABEL_MM) -> str:
    """A scalable SVG of the QR code of `url`, `label_mm` wide, with `caption` under it."""
    qr = _qr(url)
    modules = qr.symbol_size(border=QUIET_ZONE)[0]
    out = io.BytesIO()
    qr.save(out, kind="svg", scale=1, border=QUIET_ZONE, xmldecl=False, svgns=False)
    code = out.getvalue().decode("utf-8")
    # A font size that fits the caption in the code's width (monospace: ~0.6 em per character).
    font = min(3.0, 0.9 * modules / (0.6 * max(1, len(caption)))) if caption else 0.0
    height = modules + font * 1.6
    text = (
        f'<text x="{modules / 2:g}" y="{modules + font * 1.1:.2f}" font-family="monospace" '
        f'font-size="{font:.2f}" text-anchor="middle">{escape(caption)}</text>'
        if caption
        else ""
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_mm:g}mm" '
        f'height="{label_mm * height / modules:.2f}mm" viewBox="0 0 {modules} {height:.2f}">'
        f'<rect width="100%" height="100%" fill="#fff"/>{code}{text}</svg>\n'
    )


def qr_label(url: str, fmt: str, caption: str | None = None) -> bytes:
    """The label in `fmt` (one of FORMATS) at the default size; raises LabelError otherwise."""
    if fmt == "png":
        return qr_png(url)
    if fmt == "svg":
        return qr_svg(url, caption).encode("utf-8")
    raise LabelError(f"a label is {' or '.join(FORMATS)}, not {fmt!r}")


def _qr(url: str) -> segno.QRCode:
    try:
        return segno.make_qr(url, error="m", boost_error=False)
    except segno.DataOverflowError as exc:
        raise LabelError(f"{url!r} is too long for a QR code: {exc}") from exc
