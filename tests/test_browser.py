"""The web app in a real browser: Debian's Chromium, headless, driven by Playwright.

Set MUSICGEN_SCREENSHOT=1 to also save docs/screenshot.png and docs/screenshot-analyze.png
(kept out of CI runs).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from test_app import ROOT, launched_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
EXAMPLE = ROOT / "assets" / "examples" / "joplin-maple-leaf-rag.mid"
SCREENSHOT = ROOT / "docs" / "screenshot.png"
SCREENSHOT_ANALYZE = ROOT / "docs" / "screenshot-analyze.png"
TIMEOUT_MS = 60_000
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def page():
    with launched_app() as (url, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        expect(page.locator("#compose")).to_be_enabled()
        yield page
        browser.close()


def set_number(page, elem_id: str, value: int) -> None:
    """Type into a slider's number box, as a user would."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def test_upload_compose_listen_read_and_download(page, tmp_path):
    page.locator("#seed-file input[type=file]").set_input_files(EXAMPLE)
    expect(page.locator("#seed-info")).to_contain_text(EXAMPLE.name)
    set_number(page, "bars", 4)
    expect(page.locator("#seed-info")).to_contain_text("(4 bars)")
    page.locator("#compose").click()

    status = page.locator("#status")
    expect(status).to_contain_text("Done.")
    expect(status).to_contain_text("tok/s")
    result = page.locator("#variation-1")
    expect(result.get_by_test_id("waveform-Listen")).to_be_visible()  # the audio player
    mp3 = page.request.get(result.locator("a[download$='.mp3']").first.get_attribute("href"))
    body = mp3.body()
    assert mp3.ok and len(body) > 1000 and (body[:3] == b"ID3" or body[0] == 0xFF)  # tag or frame sync
    expect(result.locator(".result-sheet svg").first).to_be_visible()  # engraved score
    roll = result.locator(".result-roll img")
    expect(roll).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=roll.element_handle())
    expect(page.locator("button[role=tab]", has_text="Variation 2")).to_be_visible()  # 2 by default
    expect(page.locator("button[role=tab]", has_text="Variation 3")).to_have_count(0)

    with page.expect_download() as download:
        result.locator(".result-files a[download$='.mid']").click()
    data = Path(download.value.path()).read_bytes()
    assert data[:4] == b"MThd" and len(data) > 100

    if os.environ.get("MUSICGEN_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_continue_from_a_result_then_undo(page):
    first = page.locator("#status").inner_text()
    page.locator("#continue").click()
    expect(page.locator("#seed-info")).to_contain_text("joplin-maple-leaf-rag-v1.mid")
    expect(page.locator("#status")).not_to_have_text(first)
    expect(page.locator("#status")).to_contain_text("Done.")
    expect(page.locator("#undo")).to_be_enabled()

    page.locator("#undo").click()
    expect(page.locator("#status")).to_contain_text("Back to the previous result")
    expect(page.locator("#seed-info")).to_contain_text(EXAMPLE.name)
    expect(page.locator("#undo")).to_be_disabled()


def test_a_bad_upload_shows_its_reason_and_an_example_replaces_it(page, tmp_path):
    bad = tmp_path / "not-midi.mid"
    bad.write_text("hello")
    page.locator("#seed-file").get_by_label("Clear").click()  # drop the seed left by the last test
    expect(page.locator("#seed-info")).to_contain_text("composing from scratch")
    page.locator("#seed-file input[type=file]").set_input_files(bad)
    expect(page.locator("#seed-info")).to_contain_text("not a MIDI file")
    page.locator("#compose").click()
    expect(page.get_by_text("Not a MIDI file").first).to_be_visible()  # the error toast
    page.get_by_role("button", name="bach chorale bwv66").click()  # an example replaces it
    expect(page.locator("#seed-info")).to_contain_text("bach-chorale-bwv66.mid")


def test_analyze_tab_shows_the_composer_probabilities_of_an_uploaded_midi(page):
    page.get_by_role("tab", name="Analyze").click()
    page.locator("#analyze-file input[type=file]").set_input_files(EXAMPLE)
    page.locator("#analyze").click()
    expect(page.locator("#verdict")).to_contain_text(f"{EXAMPLE.name} sounds like:")
    bars = page.locator("#probabilities")
    expect(bars).to_contain_text("%")
    expect(bars).to_contain_text("chopin")  # every class gets a bar
    expect(bars).to_contain_text("schubert")
    if os.environ.get("MUSICGEN_SCREENSHOT") == "1":
        for close in page.locator(".toast-close").all():  # the last test's error toast
            close.click()
        expect(page.locator(".toast-close")).to_have_count(0)
        page.screenshot(path=str(SCREENSHOT_ANALYZE), full_page=True)


def test_send_to_analyze_classifies_the_chosen_variation(page):
    page.get_by_role("tab", name="Compose").click()
    expect(page.locator("#variation-1 .prose.result-style")).to_contain_text("Sounds like:")
    page.locator("#send-to-analyze").click()
    expect(page.locator("#verdict")).to_contain_text("joplin-maple-leaf-rag-v1.mid sounds like:")
    expect(page.locator("#analyze")).to_be_visible()  # the Analyze tab is open
