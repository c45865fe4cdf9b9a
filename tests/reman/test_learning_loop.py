"""The learning loop on `reman demo`, as an engineer and an admin walk it in Chromium.

An engineer paints a mask over a core's raw photograph and marks another core good; the labels
reach the node's journal; `reman dataset export --masks` writes the raw frames with class masks
(and no overlay); a small model trained on them goes into the node's registry as the candidate
(`reman train --candidate`) and the running node shadows it; the models page shows how it agrees
with the active model; the admin promotes it and the next inspection names it; a rollback
brings back the model the station config names.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from playwright.sync_api import Browser, Page, expect

from edge.journal.journal import OVERLAY_SUFFIX
from tests.reman.test_demo import demo  # noqa: F401
from tests.support.browser import chromium, log_in, shot

pytest.importorskip("torch")
pytestmark = [pytest.mark.browser, pytest.mark.slow]

STATION = "demo-1"


def logged_in(browser: Browser, url: str, user: str, password: str) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=url).new_page()
    return log_in(page, user, password)


def newest(page: Page, after: str = "") -> dict:
    """The station's newest inspection (the dashboard's API, the page's session) after `after`."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        items = page.request.get(f"/api/inspections?station={STATION}&limit=1").json()["items"]
        if items and items[0]["ts"] > after:
            return items[0]
        time.sleep(0.5)
    raise AssertionError(f"no inspection after {after}")


def inspection_after(page: Page, after: str, version: str | None) -> dict:
    """The first inspection after `after` whose model is `version` (None: any)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        record = newest(page, after)
        if version is None or record["model"]["version"] == version:
            return record
        after = record["ts"]
    raise AssertionError(f"no inspection graded by model {version}")


def paint(page: Page, record: dict, layer: str) -> tuple[int, int]:
    """Open the label editor of `record`, clear the model's masks, paint one stroke on `layer`;
    return the frame size."""
    page.goto(f"/inspections/{STATION}/{record['id']}")
    page.get_by_role("link", name="Label this photograph").first.click()
    expect(page.locator("#label-work")).to_be_visible(timeout=60_000)
    for other in page.locator("#label-layers .label-layer").all():  # the model's masks: cleared
        other.click()
        page.click("#label-clear")
    page.locator(f'#label-layers .label-layer[data-type="{layer}"]').click()
    page.fill("#brush-size", "30")
    canvas = page.locator("canvas.cursor")
    box = canvas.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.7, y, steps=12)
    page.mouse.up()
    shot(page, "loop-label-editor")
    page.click("#label-submit")
    expect(page.locator("#label-done")).to_contain_text(f"Label sent to {STATION}")
    size = canvas.evaluate("c => [c.width, c.height]")
    return int(size[0]), int(size[1])


def mark_good(page: Page, record: dict) -> None:
    page.goto(f"/inspections/{STATION}/{record['id']}")
    page.get_by_role("link", name="Label this photograph").first.click()
    expect(page.locator("#label-work")).to_be_visible(timeout=60_000)
    page.click("#label-good")
    expect(page.locator("#label-done")).to_contain_text(f"Label sent to {STATION}")


def reman(args: list[str], cwd: Path, timeout_s: float = 600) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "reman.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def export_when_labelled(data: Path, out: Path, masks: Path, count: int) -> dict:
    """`reman dataset export --masks` once the node's journal holds `count` labelled views."""
    deadline = time.monotonic() + 60
    while True:
        args = ["dataset", "export", "--journal", str(data / "journal.db"), "--out", str(out)]
        summary = json.loads(reman([*args, "--masks", str(masks), "--json"], data))
        if sum(summary[str(masks)]["per_label"].values()) >= count:
            return summary[str(masks)]
        assert time.monotonic() < deadline, summary
        time.sleep(1)


def test_label_export_train_shadow_promote_and_roll_back_on_the_demo(demo, tmp_path):  # noqa: F811
    url = demo.wait_line(r"Dashboard: (http://\S+)").group(1)
    engineer_password = demo.wait_line(r"log in as engineer / (\S+)").group(1)
    admin_password = demo.wait_line(r"or as admin / (\S+)").group(1)
    data = demo.data_dir
    with chromium() as browser:
        engineer = logged_in(browser, url, "engineer", engineer_password)

        # 1. The engineer labels two cores the real node graded: one painted, one good.
        painted_core = newest(engineer)
        width, height = paint(engineer, painted_core, "wear")
        good_core = newest(engineer, painted_core["ts"])
        mark_good(engineer, good_core)

        # 2. The labels reach the node's journal; the export holds raw frames and masks.
        out, masks = tmp_path / "classes", tmp_path / "masks"
        summary = export_when_labelled(data, out, masks, 2)
        assert summary["per_label"] == {"wear": 1, "good": 1}
        mask = cv2.imread(str(masks / f"{painted_core['id']}_v1.png"), cv2.IMREAD_GRAYSCALE)
        assert mask.shape == (height, width)
        row = mask[height // 2]
        assert row[int(width * 0.5)] == 1 and row[int(width * 0.05)] == 0  # wear, on the stroke
        assert mask[int(height * 0.05)].max() == 0  # and nowhere far from it
        good = cv2.imread(str(masks / f"{good_core['id']}_v1.png"), cv2.IMREAD_GRAYSCALE)
        assert good.max() == 0
        exported = [p.name for p in [*out.rglob("*"), *masks.rglob("*")] if p.is_file()]
        assert not [name for name in exported if OVERLAY_SUFFIX in name]
        raw = np.frombuffer((masks / f"{painted_core['id']}_v1.jpg").read_bytes(), np.uint8)
        assert cv2.imdecode(raw, cv2.IMREAD_COLOR).shape[:2] == (height, width)

        # 3. A small model trained on them is the candidate; the running node shadows it.
        trained = reman(
            ["train", "--task", "segment", "--data", str(masks), "--out", str(tmp_path / "site.onnx"),
             "--epochs", "1", "--size", "64", "--batch-size", "2", "--threads", "1",
             "--val-split", "0", "--candidate", "--config", str(data / "station.yaml")],
            data,
        )  # fmt: skip
        version = re.search(r"candidate \S+ (\S+) added to the registry", trained).group(1)
        admin = logged_in(browser, url, "admin", admin_password)
        admin.goto(f"/stations/{STATION}/models")
        deadline = time.monotonic() + 30  # the node follows its registry file every 2 s
        while admin.locator("#shadow-version").inner_text().strip() != version:
            assert time.monotonic() < deadline, "the models page never shows the candidate"
            time.sleep(1)
            admin.reload()  # the page is a snapshot of what the node last published
        shadowed = inspection_after(admin, newest(admin)["ts"], None)
        deadline = time.monotonic() + 60
        candidate = admin.locator(f"[data-candidate='{version}']")

        def figure(name: str) -> str:
            return candidate.locator(f"[data-figure={name}]").inner_text().strip()

        # shadow reports arrive; the node's own count (republished with its stats) follows
        while not candidate.count() or "0" in (figure("reports"), figure("seen-skipped")[:1]):
            assert time.monotonic() < deadline, "the models page shows no shadow report"
            time.sleep(1)
            admin.reload()
        expect(candidate.locator("[data-figure=same-decision]")).to_contain_text("%")
        expect(candidate.locator("[data-table=decisions]")).to_be_visible()
        shot(admin, "loop-models")

        # 4. The admin promotes it: the next inspection names it.
        form = admin.locator("form[data-action=promote]")
        form.locator("select[name=version]").select_option(version)
        form.locator("textarea[name=reason]").fill("agrees on the cores seen in shadow")
        form.get_by_role("button", name="Promote").click()
        row = admin.locator("#model-commands tr", has_text="agrees on the cores seen in shadow")
        expect(row).to_contain_text("confirmed", timeout=30_000)
        admin.reload()
        expect(admin.locator("#active-version")).to_have_text(version)
        promoted = inspection_after(admin, shadowed["ts"], version)
        assert promoted["model"]["version"] == version

        # 5. Rollback restores the model the station config names.
        admin.goto(f"/stations/{STATION}/models")
        form = admin.locator("form[data-action=rollback]")
        form.locator("textarea[name=reason]").fill("back to the reference model")
        form.get_by_role("button", name="Roll back").click()
        row = admin.locator("#model-commands tr", has_text="back to the reference model")
        expect(row).to_contain_text("confirmed", timeout=30_000)
        admin.reload()
        expect(admin.locator("#active-version")).to_have_text("the configured model file")
        restored = inspection_after(admin, promoted["ts"], painted_core["model"]["version"])
        assert restored["model"]["version"] != version
        shot(admin, "loop-rolled-back")

        # Nothing on the Events page is an error.
        admin.goto("/events")
        expect(admin.locator("#events")).to_be_visible()
        assert admin.locator("#events td.level-error").count() == 0
    assert demo.stop() == 0
    assert " ERROR " not in "\n".join(demo.output)
    for log in (data / "logs").glob("*.log"):
        assert " ERROR " not in log.read_text() and "Traceback" not in log.read_text(), log.name
