"""One error type, mapped once; and the limits every request meets: JSON depth, body size, body time."""
import json
import socket
import time

import pytest

from callme.errors import CallmeError

from .conftest import seed_expert

API = "/api/v1"
DEEP = 20_000  # far past Python's recursion limit (~1,000)
JSON = {"Content-Type": "application/json"}


def deep(kind):
    return "[" * DEEP + "]" * DEEP if kind == "array" else '{"a":' * DEEP + "1" + "}" * DEEP


def json_endpoints(make_expert):
    """Every endpoint that reads a JSON body: (path, what it answers a good-looking body with)."""
    expert = make_expert(handle="ray", online=True)
    return [f"{API}/calls", f"{API}/payments/orders", f"{API}/session", f"{API}/paypal/webhooks/{expert.handle}"]


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    data = response.get_json()
    assert data["error"] == code and data["message"] and isinstance(data["fields"], dict)
    return data


# ---- defect 2: JSON nested ~1,000 deep --------------------------------------------------------

@pytest.mark.parametrize("kind", ["array", "object"])
def test_deeply_nested_json_is_400_bad_json_on_every_json_endpoint(client, make_expert, kind, caplog):
    for path in json_endpoints(make_expert):
        r = client.post(path, data=deep(kind), headers=JSON)
        assert_error(r, 400, "bad_json")
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text


def test_json_just_nested_enough_is_still_read(client, make_expert):
    make_expert(handle="ray", online=True)
    r = client.post(f"{API}/calls", json={"expert": "ray", "price": {"amount": 150, "currency": "USD"},
                                          "origin": [[[[["x"]]]]]})
    assert_error(r, 422, "invalid")


# ---- defect 3: body size ----------------------------------------------------------------------

class Unread:
    """A request body that fails the test when anyone reads it."""

    def __init__(self):
        self.read_bytes = 0

    def read(self, *args):
        self.read_bytes += 1
        raise AssertionError("the body was read")

    readline = read

    def readinto(self, b):
        return self.read()


@pytest.mark.parametrize("path", [f"{API}/calls", f"{API}/payments/orders", f"{API}/session"])
def test_a_body_over_max_content_length_is_413_unread(app, client, make_expert, path):
    make_expert(handle="ray", online=True)
    size = app.config["MAX_CONTENT_LENGTH"] + 1
    stream = Unread()
    r = client.post(path, headers=JSON, environ_overrides={"wsgi.input": stream, "CONTENT_LENGTH": str(size)})
    assert_error(r, 413, "too_large")
    assert stream.read_bytes == 0


def test_max_content_length_defaults_to_one_mib(app):
    assert app.config["MAX_CONTENT_LENGTH"] == 1024 * 1024


def test_a_body_just_under_the_limit_is_read(app, client, make_expert):
    make_expert(handle="ray", online=True)
    padding = " " * (app.config["MAX_CONTENT_LENGTH"] - 200)
    raw = '{"expert": "ray", "price": {"amount": 150, "currency": "EUR"}}' + padding
    assert_error(client.post(f"{API}/calls", data=raw, headers=JSON), 409, "price_changed")


def test_the_webhook_refuses_a_big_event_before_reading_it(client, make_expert):
    expert = make_expert(handle="ray")
    stream = Unread()
    r = client.post(f"{API}/paypal/webhooks/{expert.handle}", headers=JSON,
                    environ_overrides={"wsgi.input": stream, "CONTENT_LENGTH": str(256 * 1024 + 1)})
    assert_error(r, 413, "too_large")
    assert stream.read_bytes == 0


def test_the_webhook_stops_reading_a_chunked_body_at_its_limit(client, make_expert):
    """No Content-Length (chunked): the read is limited, never the whole body."""
    import io

    expert = make_expert(handle="ray")
    body = io.BytesIO(b"{" + b" " * (2 * 1024 * 1024))
    r = client.post(f"{API}/paypal/webhooks/{expert.handle}", headers={**JSON, "Transfer-Encoding": "chunked"},
                    environ_overrides={"wsgi.input": body, "wsgi.input_terminated": True})
    assert_error(r, 413, "too_large")
    assert body.tell() <= 256 * 1024 + 64 * 1024


# ---- one error type ---------------------------------------------------------------------------

def test_a_callme_error_answers_json_on_api_paths_and_a_secure_page_elsewhere(app, client):
    @app.get("/api/v1/_refuse")
    def refuse_api():
        raise CallmeError("teapot_busy", "The teapot is busy.", status=418, extra={"status": "busy"},
                          headers={"Retry-After": "3"})

    @app.get("/_refuse")
    def refuse_page():
        raise CallmeError("teapot_busy", "The teapot is <busy>.", status=418)

    r = client.get("/api/v1/_refuse")
    assert r.status_code == 418 and r.headers["Retry-After"] == "3"
    assert r.get_json() == {"error": "teapot_busy", "message": "The teapot is busy.", "fields": {}, "status": "busy"}
    page = client.get("/_refuse")
    assert page.status_code == 418 and page.mimetype == "text/html"
    assert "The teapot is &lt;busy&gt;." in page.get_data(as_text=True)
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/no-such/page/here", "/widget/nothing.exe"])
def test_html_error_pages_carry_the_page_csp_and_nosniff(client, path):
    r = client.get(path)
    assert r.status_code == 404 and r.mimetype == "text/html"
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_server_errors_are_json_on_the_api_and_say_nothing_inside(app, client, caplog):
    @app.get("/api/v1/_boom")
    def boom():
        raise RuntimeError("secret detail")

    r = client.get("/api/v1/_boom")
    data = assert_error(r, 500, "internal_error")
    assert "secret detail" not in json.dumps(data)


# ---- defect 9: 405 keeps Allow ------------------------------------------------------------------

@pytest.mark.parametrize("method, path, allowed", [
    ("put", f"{API}/calls", {"POST"}),
    ("post", f"{API}/currencies", {"GET", "HEAD", "OPTIONS"}),
    ("patch", f"{API}/session", {"GET", "HEAD", "OPTIONS", "POST", "DELETE"}),
])
def test_405_keeps_the_allow_header(client, method, path, allowed):
    r = getattr(client, method)(path)
    assert_error(r, 405, "method_not_allowed")
    assert {m.strip() for m in r.headers["Allow"].split(",")} >= allowed - {"HEAD", "OPTIONS"}


def test_405_page_keeps_the_allow_header(client):
    r = client.delete("/login")
    assert r.status_code == 405 and "GET" in r.headers["Allow"]


# ---- defect 3: a slow body against a live server --------------------------------------------------

def _slow_post(url_port, path, total=2000, every=0.5, give_up=15):
    """POST a JSON body a byte every ``every`` seconds; return (seconds until answered or closed, answer)."""
    s = socket.create_connection(("127.0.0.1", url_port), timeout=give_up)
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              f"Content-Length: {total}\r\n\r\n".encode())
    start = time.monotonic()
    s.settimeout(every)
    answer = b""
    try:
        while time.monotonic() - start < give_up:
            try:
                s.sendall(b" ")
            except OSError:
                break  # closed on us
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not chunk:
                break
            answer += chunk
        return time.monotonic() - start, answer
    finally:
        s.close()


@pytest.mark.live
@pytest.mark.parametrize("path", [f"{API}/calls", f"{API}/paypal/webhooks/ray", "/healthz"])
def test_a_slow_body_is_answered_408_and_closed_within_body_timeout(live_factory, path):
    server = live_factory(env={"BODY_TIMEOUT": "2"}, seed=True)
    seed_expert(server, "ray", price=0)
    took, answer = _slow_post(server.port, path)
    assert took < 2 + 3, (took, answer[:200])
    if path != "/healthz":  # a view that reads the body answers 408
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b'"error":"request_timeout"' in answer.replace(b" ", b"")
    # The server is still there for everyone else.
    import requests

    assert requests.get(server.url + "/healthz", timeout=5).ok


# ---- the body deadline, without a server ------------------------------------------------------

def test_a_read_after_the_body_deadline_is_408_and_a_whole_body_is_finished():
    import io

    from werkzeug.exceptions import RequestTimeout

    from callme.web.limits import DeadlineInput

    now = [100.0]
    body = DeadlineInput(io.BytesIO(b"0123456789"), 10, 10, clock=lambda: now[0])
    assert body.read(4) == b"0123" and not body.finished
    now[0] = 110.0
    with pytest.raises(RequestTimeout):
        body.read(4)
    fresh = DeadlineInput(io.BytesIO(b"0123456789"), 10, 10, clock=lambda: now[0])
    assert fresh.read() == b"0123456789" and fresh.finished
    chunked = DeadlineInput(io.BytesIO(b"abc"), 10, None, clock=lambda: now[0])
    assert chunked.read(3) == b"abc" and not chunked.finished and chunked.read(3) == b"" and chunked.finished
