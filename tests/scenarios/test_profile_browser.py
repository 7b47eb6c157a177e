"""The profile editor and the public profile in Debian's Chromium, against the live server: the expert
fills the form, is told what was refused, uploads a photo; a visitor reads the page (with and without
JavaScript) and its button works, plays the intro video and seeks in it; axe-core finds no WCAG 2.1 AA
violation on any of them. Screenshots (profile-editor, profile) go to tests/artifacts/ (docs/ with DOCS_SHOTS=1)."""
import io
import re

import pytest
from PIL import Image

from ..videos import make_video
from .browser import console, new_context
from .test_a11y import assert_accessible
from .test_browser import shot

pytestmark = [pytest.mark.browser, pytest.mark.live]


def photo_file(tmp_path):
    path = tmp_path / "me.png"
    out = io.BytesIO()
    Image.radial_gradient("L").resize((900, 700)).convert("RGB").save(out, "PNG")
    path.write_bytes(out.getvalue())
    return str(path)


def test_an_expert_fills_the_profile_and_a_visitor_reads_it(browser, server, expert, tmp_path):
    page = console(browser, server, expert, online=False)
    page.click("a[href='/dashboard/profile']")
    page.wait_for_url("**/dashboard/profile")
    assert_accessible(page, "profile editor")

    page.fill("input[name=headline]", "Immigration lawyer")
    page.fill("textarea[name=bio]", "Twelve years of visas.\n\nAsk me anything <b>bold</b>.")
    page.fill("textarea[name=qualifications]", "LL.M., Leiden")
    page.fill("input[name=languages]", "en, German")
    page.fill("input[name=service_name_0]", "Visa check")
    page.fill("input[name=service_line_0]", "Is your file complete?")
    page.select_option("select[name=timezone]", "Europe/Berlin")
    page.fill("input[name=price]", "1.505")  # refused: USD has two decimals
    page.click("#profile-form button[type=submit]")
    page.wait_for_selector("#profile-errors")
    assert "decimal places" in page.text_content("#price-error")
    assert page.input_value("input[name=headline]") == "Immigration lawyer"  # kept as typed
    assert_accessible(page, "profile editor, a value refused")

    page.fill("input[name=price]", "2.00")
    page.click("#profile-form button[type=submit]")
    page.wait_for_selector("#profile-saved")
    assert re.search(r"can change again on \d{4}-\d\d-\d\d \d\d:\d\d CE[S]?T", page.text_content("#price-hint"))

    page.set_input_files("input[name=photo]", photo_file(tmp_path))
    page.click("#photo-form button[type=submit]")
    page.wait_for_selector("#photo-saved")
    assert page.evaluate("() => document.querySelector('#current-photo').naturalWidth") == 512

    shot(page, "profile-editor")

    page.click("a[href='/dashboard/video']")
    page.wait_for_url("**/dashboard/video")
    video_path = tmp_path / "intro.webm"
    make_video(video_path, "vp9-opus.webm", seconds=6.0, size=(320, 240))
    page.set_input_files("input[name=video]", str(video_path))
    page.click("form[enctype='multipart/form-data'] button[type=submit]")
    page.wait_for_selector("#video-saved")
    assert_accessible(page, "video page, a video saved")

    visitor = new_context(browser).new_page()
    visitor.goto(f"{server.url}/{expert}")
    visitor.wait_for_function("() => /Offline/.test(document.querySelector('callme-button')?.shadowRoot.textContent)")
    assert visitor.text_content("#price") == "$2.00 a minute · First 2 seconds free"
    assert "Ask me anything <b>bold</b>." in visitor.text_content("article")
    assert visitor.evaluate("() => document.querySelector('img.profile-photo').naturalWidth") == 512
    assert_accessible(visitor, "public profile")
    # The intro video plays, and seeks: the browser asks for byte ranges and the server answers 206.
    visitor.wait_for_function("() => document.querySelector('video.intro-video').readyState >= 1")
    assert visitor.evaluate("() => Math.round(document.querySelector('video.intro-video').duration)") == 6
    visitor.evaluate("() => { const v = document.querySelector('video.intro-video'); v.muted = true; return v.play(); }")
    visitor.wait_for_function("() => document.querySelector('video.intro-video').currentTime > 0.2")
    visitor.evaluate("() => { document.querySelector('video.intro-video').currentTime = 4.5; }")
    visitor.wait_for_function("() => { const v = document.querySelector('video.intro-video');"
                              " return !v.seeking && v.currentTime >= 4.5; }")
    visitor.evaluate("() => document.querySelector('video.intro-video').pause()")
    shot(visitor, "profile")

    reader = new_context(browser, java_script_enabled=False).new_page()
    reader.goto(f"{server.url}/{expert}")
    for text in ("Immigration lawyer", "Visa check", "English, German", "Offline"):
        assert text in reader.text_content("main"), text
