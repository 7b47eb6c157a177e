"""The call widget and the console pages without a browser: node's unit tests of the widget's
modules (widget/tests/), the strict-CSP rules on the markup, and the element ids the browser tests drive."""
import os
import re
from html.parser import HTMLParser

import pytest

from .conftest import assert_node_suite_passes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WIDGET = os.path.join(ROOT, "widget")
TEMPLATES = os.path.join(ROOT, "server", "callme", "templates")


def read(*parts):
    with open(os.path.join(*parts), encoding="utf-8") as f:
        return f.read()


class Markup(HTMLParser):
    """Ids, inline styles, inline scripts and inline handlers of one page."""

    def __init__(self, text):
        super().__init__()
        self.ids, self.inline = [], []
        self._script = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "style" or "style" in attrs:
            self.inline.append(f"<{tag} style>")
        self.inline += [f"<{tag} {name}>" for name in attrs if name.startswith("on")]
        # A JSON-LD block is data, never run: script-src 'self' does not apply to it.
        self._script = tag == "script" and "src" not in attrs and attrs.get("type") != "application/ld+json"

    def handle_data(self, data):
        if self._script and data.strip():
            self.inline.append("<script> without src")

    def handle_endtag(self, tag):
        self._script = False


WIDGET_IDS = ["status", "price", "start-call", "audio-only", "device-error", "ringing", "cancel", "outcome", "retry",
              "incall", "remote-video", "local-video", "mute", "camera", "hangup", "elapsed", "free-left", "cost",
              "warning", "reconnecting", "unmute-audio", "ended", "ended-duration", "ended-amount", "receipt", "close",
              "paying-hold", "paypal-focus", "notice"]
CONSOLE_IDS = ["console", "presence", "presence-toggle", "incoming", "accept", "decline", "incall", "hangup", "elapsed",
               "cost", "remote-video", "local-video", "mute", "camera", "summary", "summary-amount", "snippet"]


PAGES = [(WIDGET, "index.html")] + [(TEMPLATES, name) for name in sorted(os.listdir(TEMPLATES))
                                    if name.endswith(".html")]


@pytest.mark.parametrize("path", PAGES, ids=[name for _, name in PAGES])
def test_no_inline_script_or_style(path):
    """Every page and template (the widget's, the console, the account pages, the dashboard, receipts,
    PayPal settings) is served with script-src 'self' and style-src 'self': inline code would be blocked."""
    page = Markup(read(*path))
    assert page.inline == []
    assert len(page.ids) == len(set(page.ids)), "duplicate ids"


def incall_markup():
    """The in-call screen's markup, as widget/incall.js writes it into both pages."""
    return re.search(r"export const markup = \(\{ costLabel \}\) => `(.*?)`;", read(WIDGET, "incall.js"), re.S).group(1)


@pytest.mark.parametrize("path, ids", [((WIDGET, "index.html"), WIDGET_IDS), ((TEMPLATES, "console.html"), CONSOLE_IDS)])
def test_the_ids_browser_tests_use(path, ids):
    page, incall = Markup(read(*path)), Markup(incall_markup())
    assert set(ids) <= set(page.ids + incall.ids)
    assert not set(page.ids) & set(incall.ids), "an id both in the page and in the in-call markup"


def test_incall_markup_is_written_once():
    """Both pages hold only the in-call section and its heading; incall.js writes the rest."""
    incall = Markup(incall_markup())
    assert incall.inline == [] and len(incall.ids) == len(set(incall.ids))
    for path in [(WIDGET, "index.html"), (TEMPLATES, "console.html")]:
        html = read(*path)
        assert 'id="incall"' in html
        assert not {"remote-video", "local-video", "hangup", "mute", "camera", "elapsed", "cost"} & set(Markup(html).ids), path


def contrast(fg, bg):
    """WCAG 2.1 contrast ratio of two #rrggbb colours."""
    def luminance(colour):
        channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        r, g, b = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * r + 0.7152 * g + 0.0722 * b
    light, dark = sorted([luminance(fg), luminance(bg)], reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_text_colours_meet_wcag_aa():
    """Badges (green on soft green) and avatars (white initials, 15px in the small one) hold 4.5:1."""
    css = read(WIDGET, "common.css")
    var = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-f]{6})", css))
    pairs = {"badge": (var["ok"], var["ok-soft"]), "ok button": ("#ffffff", var["ok"]),
             "notice": (var["info"], var["info-soft"]), "muted": (var["muted"], var["panel"])}
    pairs.update({f"avatar {hue}": ("#ffffff", colour)
                  for hue, colour in re.findall(r"\.(hue-\d) \{ background: (#[0-9a-f]{6}); \}", css)})
    assert len(pairs) == 4 + 8
    low = {name: round(contrast(*pair), 2) for name, pair in pairs.items() if contrast(*pair) < 4.5}
    assert low == {}


def test_console_keeps_its_data_attributes():
    html = read(TEMPLATES, "console.html")
    assert 'data-handle="{{ expert.handle }}"' in html and 'data-origin="{{ origin }}"' in html


def test_modules_are_plain_es_modules():
    """No bundler: every import is a relative path to a file that exists. The pure modules (frames,
    the state machine, formatting) touch no browser API, so node tests them as they run."""
    for name in os.listdir(WIDGET):
        if name.endswith(".js"):
            for target in re.findall(r'^import .* from "(.+?)";$', read(WIDGET, name), re.MULTILINE):
                assert target.startswith("./") and os.path.exists(os.path.join(WIDGET, target)), (name, target)
    for pure in ("frames.js", "callstate.js", "format.js", "api.js", "messages.js"):
        code = re.sub(r'"(?:\\.|[^"\\])*"|`(?:\\.|[^`\\])*`|//[^\n]*|/\*.*?\*/', "", read(WIDGET, pure), flags=re.S)
        assert not re.search(r"\b(document|window|globalThis|WebSocket|fetch|setTimeout|setInterval)\b", code), pure


def test_the_test_hook_is_asked_for():
    """`window.callme` is published only through widget/testhook.js, which needs the tests' flag."""
    for name in os.listdir(WIDGET):
        if name.endswith(".js") and name != "testhook.js":
            assert not re.search(r"window\.callme\s*=", read(WIDGET, name)), name
    assert "__callmeTest === true" in read(WIDGET, "testhook.js")


def test_node_suite():
    """widget/tests/ with node's own test runner: frames, the sockets, the state machine, money, durations."""
    assert_node_suite_passes(os.path.join(WIDGET, "tests"))


# ---- callme's pages in the PayPal window --------------------------------------------------

@pytest.mark.parametrize("path, status, word, order", [
    ("/paypal/wait", 200, "waiting", ""),
    ("/paypal/return?token=5O190127TN364715T&PayerID=QYR5Z8XDVJNXQ", 200, "approved", "5O190127TN364715T"),
    ("/paypal/cancel?token=5O190127TN364715T", 200, "cancelled", "5O190127TN364715T"),
    ("/paypal/return", 400, "invalid", ""),
    ("/paypal/return?token=%3Cscript%3E", 400, "invalid", ""),
    ("/paypal/cancel?token=" + "A" * 65, 400, "invalid", ""),
])
def test_paypal_window_pages(client, path, status, word, order):
    """They tell the widget how PayPal went (data-status, data-order for paypal-return.js), framed by nobody."""
    r = client.get(path)
    assert r.status_code == status
    html = r.get_data(as_text=True)
    assert f'data-status="{word}"' in html and f'data-order="{order}"' in html
    assert "<script" not in html.replace('<script type="module" src="/widget/paypal-return.js"></script>', "")
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["Referrer-Policy"] == "no-referrer" and r.headers["Cache-Control"] == "no-store"


def test_unknown_paypal_window_page(client):
    assert client.get("/paypal/elsewhere?token=X").status_code == 404
