"""The operators' console in a real browser (Playwright driving Debian's
Chromium) on the whole running pipeline: sign in, add a door, enrol a
person from photos through the encoder (and see a photo refused with its
reason), ``facegate snap`` at the door and watch the OPEN arrive on the Live
page with its snapshot, find it in the Log and make its snapshot a template,
revoke the person; a viewer sees no control that changes anything. Each
page is saved as a screenshot (``FACEGATE_CONSOLE_SCREENSHOTS``, e.g.
``docs/console`` to refresh the README's)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import chromium_path
from e2e_site import Site

from facegate.tools.settings import ToolSettings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ADMIN, VIEWER = "facilities", "frontdesk"
PASSWORD = "browser-test-password-7"
DOOR = "reception"
PERSON = "hopper"
"""Names no other end-to-end test uses (they share one stack): Grace Hopper's
portrait (matplotlib's sample data), enrolled from it and its mirror image."""


def facegate(site: Site, *args: str, stdin: str | None = None, timeout: float = 120.0) -> str:
    """The command line, configured for the test stack, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEGATE_")}
    env.update(site.env)
    proc = subprocess.run(
        [sys.executable, "-m", "facegate.tools.cli", *args], input=stdin, env=env,
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    assert proc.returncode == 0, f"facegate {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def _jpeg(image: Any) -> bytes:
    import io

    out = io.BytesIO()
    image.save(out, format="JPEG", quality=92)
    return out.getvalue()


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    from PIL import Image, ImageOps

    from facegate.tools.demo import no_face_picture
    from facegate.tools.samples import grace_hopper_path

    portrait = Image.open(grace_hopper_path()).convert("RGB")
    w, h = portrait.size
    return {
        "hopper.jpg": _jpeg(portrait),
        "hopper_mirror.jpg": _jpeg(ImageOps.mirror(portrait)),
        # the camera's view: a tighter, smaller frame of her
        "camera.jpg": _jpeg(portrait.crop((w // 10, 0, w - w // 10, h)).resize((w // 2, h // 2))),
        "landscape.jpg": no_face_picture(),
    }


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = ToolSettings.from_env().console_screenshots
    out = Path(folder) if folder else tmp_path_factory.mktemp("console-shots")
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Any]:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        found = pw.chromium.launch(
            executable_path=executable, headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        try:
            yield found
        finally:
            found.close()


def signed_in(browser: Any, site: Site, name: str, shots: Path | None = None) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(30_000)
    page.goto(f"{site.stack.config.console_url}/doors")
    assert "/login" in page.url
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    if shots is not None:
        page.screenshot(path=str(shots / "login.png"))
    page.click("button[type=submit]")
    page.wait_for_url("**/doors")
    return page


def test_console_in_a_browser(
    site: Site, browser: Any, photos: dict[str, bytes], shots: Path, tmp_path: Path
) -> None:
    facegate(site, "operators", "add", ADMIN, "--role", "admin", "--password-file", "-",
             stdin=PASSWORD + "\n")
    facegate(site, "operators", "add", VIEWER, "--role", "viewer", "--password-file", "-",
             stdin=PASSWORD + "\n")
    page = signed_in(browser, site, ADMIN, shots)

    # --- a door ------------------------------------------------------------------
    page.fill("#add-door input[name=door]", DOOR)
    page.select_option("#add-door select[name=mode]", "verify")
    page.fill("#add-door input[name=threshold]", "0.6")
    page.click("#add-door button[type=submit]")
    page.wait_for_url(f"**/doors/{DOOR}?saved=1")
    key = page.inner_text("#public-key")
    assert len(key) == 64
    assert site.store.get_door(DOOR) is not None
    page.goto(f"{site.stack.config.console_url}/doors")
    assert page.locator(f"tr[data-door={DOOR}]").count() == 1
    page.screenshot(path=str(shots / "doors.png"), full_page=True)

    # --- enrolment: refused photo first (nothing stored), then the real ones ------------
    for name in ("hopper.jpg", "hopper_mirror.jpg", "landscape.jpg"):
        (tmp_path / name).write_bytes(photos[name])
    page.goto(f"{site.stack.config.console_url}/people")
    page.fill("#enrol input[name=name]", PERSON)
    page.set_input_files("#enrol input[name=photos]",
                         [str(tmp_path / "hopper.jpg"), str(tmp_path / "landscape.jpg")])
    page.check(f"#enrol input[name=doors][value={DOOR}]")
    page.click("#enrol button[type=submit]")
    page.wait_for_selector("table.refused", timeout=120_000)
    refused = page.inner_text("table.refused")
    assert "landscape.jpg" in refused and "no face" in refused
    assert PERSON not in site.store.people()
    page.fill("#enrol input[name=name]", PERSON)
    page.set_input_files("#enrol input[name=photos]",
                         [str(tmp_path / "hopper.jpg"), str(tmp_path / "hopper_mirror.jpg")])
    page.check(f"#enrol input[name=doors][value={DOOR}]")
    page.click("#enrol button[type=submit]")
    page.wait_for_selector("p.notice", timeout=120_000)
    assert f"Enrolled {PERSON}: 2 new template(s)" in page.inner_text("p.notice")
    assert page.locator(f"tr[data-person={PERSON}] td").nth(2).inner_text() == "2"
    page.wait_for_function(
        f"() => {{ const i = document.querySelector('tr[data-person={PERSON}] img');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    page.screenshot(path=str(shots / "people.png"), full_page=True)

    # --- the door opens, live ---------------------------------------------------------
    page.goto(f"{site.stack.config.console_url}/live")
    page.wait_for_function("() => document.getElementById('live-state').textContent"
                           " === 'connected'")
    (tmp_path / "camera.jpg").write_bytes(photos["camera.jpg"])
    out = facegate(site, "snap", DOOR, str(tmp_path / "camera.jpg"), "--badge", PERSON,
                   "--camera", "entrance", "--wait", "60")
    assert "OPEN" in out
    row = page.locator("#live tbody tr.open").first
    row.wait_for(timeout=30_000)
    assert row.locator(".person").inner_text() == PERSON
    assert row.locator(".door").inner_text() == DOOR
    assert row.locator(".reason").inner_text() == "granted"
    assert float(row.locator(".distance").inner_text()) < 0.6
    assert row.locator(".latency").inner_text().endswith(" ms")
    page.wait_for_function(
        "() => { const i = document.querySelector('#live tbody tr.open img');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    src = row.locator("img").get_attribute("src") or ""
    assert src.startswith("/snapshots/")  # the console presigns it; the bucket stays private
    page.screenshot(path=str(shots / "live.png"), full_page=True)

    # --- the log --------------------------------------------------------------------------
    page.goto(f"{site.stack.config.console_url}/log?door={DOOR}&decision=OPEN")
    opened = page.locator("#log tbody tr.open")
    assert opened.count() == 1 and PERSON in opened.first.inner_text()
    # the snapshot becomes a third template, through the encoder
    opened.first.locator("form.snapshot-template button").click()
    page.wait_for_selector("p.notice", timeout=120_000)
    assert f"Enrolled {PERSON}: 1 new template(s), 3 in all" in page.inner_text("p.notice")
    page.goto(f"{site.stack.config.console_url}/log")
    text = page.inner_text("#log")
    assert f"console:{ADMIN}" in text and "enrol_refused" in text and "door_set" in text
    page.screenshot(path=str(shots / "log.png"), full_page=True)
    page.goto(f"{site.stack.config.console_url}/calibration/{DOOR}")
    assert page.locator("#histogram rect.granted").count() > 0
    page.screenshot(path=str(shots / "calibration.png"), full_page=True)

    # --- a viewer sees everything and can change nothing ------------------------------
    viewer = signed_in(browser, site, VIEWER)
    for path in ("/doors", f"/doors/{DOOR}", "/people", "/log", f"/calibration/{DOOR}"):
        viewer.goto(f"{site.stack.config.console_url}{path}")
        forms = viewer.locator("form[method=post]")
        actions = [forms.nth(i).get_attribute("action") for i in range(forms.count())]
        assert actions == ["/logout"], (path, actions)
    viewer.goto(f"{site.stack.config.console_url}/people")
    viewer.screenshot(path=str(shots / "people-viewer.png"), full_page=True)
    viewer.close()

    # --- revoke, with confirmation ------------------------------------------------------
    page.goto(f"{site.stack.config.console_url}/people")
    page.once("dialog", lambda dialog: dialog.accept())
    page.fill(f"form.revoke[data-person={PERSON}] input[name=confirm]", PERSON)
    page.click(f"form.revoke[data-person={PERSON}] button[type=submit]")
    page.wait_for_selector("p.notice")
    assert f"Revoked {PERSON}" in page.inner_text("p.notice")
    assert PERSON not in site.store.people()
    assert site.objects.list_objects(f"enroll/{PERSON}/") == []
    assert site.objects.list_objects(f"uploads/{DOOR}/") == []  # the door snapshot too
    door = site.store.get_door(DOOR)
    assert door is not None and PERSON not in door.allowed
    page.close()
