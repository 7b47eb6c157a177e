"""embed.js, the loader host pages paste in: its size, how it is served, what it must never do.

Its behaviour (queue, buttons, prices, the overlay, messages) is tested in node against the real
file, in embed/tests/; test_node_suite runs that suite here too.
"""
import gzip
import os
import re

import pytest

from .conftest import assert_node_suite_passes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMBED = os.path.join(ROOT, "embed", "embed.js")
SOURCE = os.path.join(ROOT, "embed", "embed.src.js")
BUDGET = 2112  # bytes, gzip -9: 2 KiB and the rating (stars and count) the button shows


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def test_gzip_size_within_budget():
    with open(EMBED, "rb") as f:
        data = f.read()
    # gzip -9 as a server sends it (no file name in the header), and as `gzip -9 -c embed.js` counts it.
    assert len(gzip.compress(data, 9, mtime=0)) <= BUDGET
    assert len(gzip.compress(data, 9, mtime=0)) + len(b"embed.js\0") <= BUDGET


def test_served_as_javascript(client):
    response = client.get("/embed.js")
    try:
        assert response.status_code == 200
        assert response.mimetype == "text/javascript"
        with open(EMBED, "rb") as f:
            assert response.get_data() == f.read()
    finally:
        response.close()


def test_one_iife_and_nothing_else():
    code = read(EMBED).strip()
    assert re.fullmatch(r"\(\(\)=>\{.*\}\)\(\);?", code, re.DOTALL), "embed.js must be a single arrow IIFE"
    assert "\n" not in code, "embed.js is the minified build of embed.src.js (see embed/README.md)"
    # Nothing before or after the IIFE in the readable source either (comments aside).
    body = re.sub(r"^\s*//.*$", "", read(SOURCE), flags=re.MULTILINE).strip()
    assert body.startswith("(() => {") and body.endswith("})();")


@pytest.mark.parametrize("path", [EMBED, SOURCE], ids=["embed.js", "embed.src.js"])
@pytest.mark.parametrize("pattern, why", [
    (r"document\.cookie|\.cookie\b", "no cookies"),
    (r"localStorage|sessionStorage|indexedDB", "no storage on the host page"),
    (r"postMessage\([^;]*?,\s*[\"'`]\*[\"'`]", "postMessage only to the exact callme origin"),
    (r"\beval\(|new Function\b", "no eval"),
    (r"\b(document|\w\.(head|documentElement|body))\.(style|adoptedStyleSheets)\b|\.insertRule\(", "no host-page CSS"),
    (r"<style|\bstyle=", "no inline styles: a strict CSP would refuse them"),
    (r"\bvar\s", "no var: nothing can leak to the global object"),
    (r"mode:\s*[\"']closed[\"']", "open shadow roots, so tests (and host pages) can reach inside"),
])
def test_never(path, pattern, why):
    assert not re.search(pattern, read(path)), why


def test_shadow_dom_for_all_it_renders():
    code = read(EMBED)
    # Everything it creates is a shadow host: the button hosts and the dialog host.
    assert code.count("createElement(") == 1
    assert "attachShadow({mode:\"open\"})" in code
    assert ".adoptedStyleSheets=[" in code
    assert 'allow="camera; microphone; autoplay"' in code  # what the widget uses, nothing more
    assert '<dialog><form method="dialog">' in code  # showModal() gives it the modal dialog semantics


def test_exponent_table_is_the_servers():
    """The loader's own copy of the ISO 4217 exponents (it formats prices without asking) matches
    callme's one table, code for code."""
    from callme.money.currency import EXPONENTS

    table = re.search(r'"([a-z0-9]+)"\s*\.split\(currency\.toLowerCase\(\)\)', read(SOURCE)).group(1)
    embedded = {code.upper(): int(digit) for codes, digit in re.findall(r"([a-z]+)(\d)", table)
                for code in re.findall("...", codes)}
    assert embedded == EXPONENTS


def test_node_suite():
    """The behaviour tests in embed/tests/ (node's own test runner, no browser)."""
    assert_node_suite_passes(os.path.join(ROOT, "embed", "tests"))
