"""The profile editor, the photo upload, the photos and the public profile (web/profile.py),
through the test client."""
import html
import io
import json
import os
import re
from datetime import timedelta

import pytest
from PIL import Image

from callme.experts import profiles
from callme.extensions import db
from callme.models import Expert, utcnow

from .conftest import CSRF, login
from .test_profiles import exif_with_gps, image_bytes



@pytest.fixture
def app(make_app, tmp_path):
    return make_app(MEDIA_DIR=str(tmp_path / "media"))


def photos(app):
    folder = profiles.photos_dir(app.config["MEDIA_DIR"])
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def form(**overrides):
    values = {
        "csrf": CSRF, "headline": "Immigration lawyer", "bio": "Twelve years of visas.",
        "qualifications": "LL.M., Leiden\nBar of Amsterdam", "languages": "en, German, pt-BR",
        "service_name_0": "Visa check", "service_line_0": "Is your file complete?",
        "service_name_1": "Appeal", "service_line_1": "When the answer was no",
        "timezone": "Europe/Berlin", "price": "1.50", "currency": "USD", "free_seconds": "60",
        "cap_minutes": "30", "allowed_origins": "https://ann.example",
    }
    return {**values, **overrides}


def upload(client, data, filename="me.jpg", content_type="image/jpeg"):
    """POST the photo form, its multipart body built here (in memory: the test client would spool a
    large one to a temporary file that the app's body-deadline wrapper keeps it from closing)."""
    boundary = "photo-boundary-7d1"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{CSRF}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return client.post("/dashboard/profile/photo", data=body, content_type=f"multipart/form-data; boundary={boundary}")


def stored(expert_id):
    db.session.expire_all()
    expert = db.session.get(Expert, expert_id)
    return expert, db.session.get(profiles.ExpertProfile, expert_id)


# ---- the editor --------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path", [
    ("get", "/dashboard/profile"), ("post", "/dashboard/profile"), ("post", "/dashboard/profile/photo"),
    ("post", "/dashboard/profile/photo/delete")])
def test_the_editor_needs_a_logged_in_expert(client, method, path):
    r = getattr(client, method)(path)
    assert r.status_code == 302 and r.headers["Location"].endswith("/login")


def test_the_editor_shows_the_stored_values_and_is_linked(client, make_expert):
    expert = make_expert(price=150)
    login(client, expert)
    r = client.get("/dashboard/profile")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    page = r.get_data(as_text=True)
    assert 'name="price" value="1.50"' in page and "<option selected>USD</option>" in page
    assert 'href="/dashboard/profile" aria-current="page"' in page
    assert 'href="/dashboard/profile"' in client.get("/dashboard").get_data(as_text=True)


def test_saving_the_form_stores_everything(client, make_expert):
    expert = make_expert(price=150)
    login(client, expert)
    r = client.post("/dashboard/profile", data=form(price="2.00"))
    assert r.status_code == 303 and r.headers["Location"].endswith("/dashboard/profile?saved=1")
    expert, profile = stored(expert.id)
    assert (expert.price_minor, expert.cap_minutes, expert.allowed_origins) == (200, 30, ["https://ann.example"])
    assert profile.languages == ["en", "de", "pt-BR"]
    assert profile.services[1] == {"name": "Appeal", "line": "When the answer was no"}
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert 'id="profile-saved"' in page
    assert "it can change again on" in page  # the price just changed


def test_a_form_without_csrf_changes_nothing(client, make_expert):
    expert = make_expert()
    login(client, expert)
    r = client.post("/dashboard/profile", data=form(csrf="forged", headline="Hacked"))
    assert r.status_code == 400
    assert stored(expert.id)[1] is None


def test_each_refusal_is_said_next_to_its_field_and_nothing_is_stored(client, make_expert):
    expert = make_expert(price=150)
    login(client, expert)
    r = client.post("/dashboard/profile", data=form(
        headline="x" * 500, timezone="Mars/Olympus", price="2.00", cap_minutes="0",
        allowed_origins="http://ann.example"))
    assert r.status_code == 400
    page = r.get_data(as_text=True)
    assert 'id="profile-errors"' in page and "Nothing was saved" in page
    for field in ("headline", "timezone", "cap_minutes", "allowed_origins"):
        assert f'id="{field}-error"' in page, field
    assert 'id="price-error"' not in page
    assert 'aria-invalid="true"' in page
    assert "http://ann.example" in page  # what was typed is shown again
    expert, profile = stored(expert.id)
    assert profile is None and expert.price_minor == 150 and expert.price_changed_at is None


def test_the_editor_says_when_the_price_can_change_again(client, make_expert):
    expert = make_expert(price=150)
    changed = utcnow() - timedelta(hours=2)
    expert.price_changed_at = changed
    db.session.commit()
    login(client, expert)
    client.post("/dashboard/profile", data=form(price="1.50", timezone="Asia/Tokyo"))  # same price: saved
    page = client.get("/dashboard/profile").get_data(as_text=True)
    when = profiles.local_time(changed + timedelta(hours=24), "Asia/Tokyo")
    assert re.search(r'id="next-price-change">' + re.escape(when) + "<", page)
    assert when.endswith("JST")

    r = client.post("/dashboard/profile", data=form(price="3.00", timezone="Asia/Tokyo"))
    assert r.status_code == 400
    assert "can change again on " + when in html.unescape(r.get_data(as_text=True))
    assert stored(expert.id)[0].price_minor == 150


# ---- the photo ---------------------------------------------------------------------------------

def test_a_photo_upload_is_stored_stripped_and_served_cacheable(app, client, make_expert):
    expert = make_expert()
    login(client, expert)
    r = upload(client, image_bytes("JPEG", size=(2000, 1000), exif=exif_with_gps().tobytes()))
    assert r.status_code == 303
    [name] = photos(app)
    assert stored(expert.id)[1].photo == name
    r = client.get(f"/media/photos/{name}")
    assert r.status_code == 200 and r.mimetype == "image/jpeg"
    assert "immutable" in r.headers["Cache-Control"] and "max-age=31536000" in r.headers["Cache-Control"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    image = Image.open(io.BytesIO(r.data))
    r.close()  # the file it was served from
    assert max(image.size) == 512 and not image.getexif()
    assert 'id="current-photo"' in client.get("/dashboard/profile").get_data(as_text=True)

    r = upload(client, image_bytes("WEBP", size=(100, 100)), filename="new.webp", content_type="image/webp")
    assert r.status_code == 303
    [newer] = photos(app)
    assert newer != name
    assert client.get(f"/media/photos/{name}").status_code == 404

    r = client.post("/dashboard/profile/photo/delete", data={"csrf": CSRF})
    assert r.status_code == 303 and photos(app) == [] and stored(expert.id)[1].photo is None


@pytest.mark.parametrize("name, data, filename, content_type, status", [
    ("text named .jpg", b"not a photo at all\n" * 50, "me.jpg", "image/jpeg", 415),
    ("truncated", image_bytes("JPEG", size=(400, 400))[:500], "me.jpg", "image/jpeg", 400),
    ("gif", image_bytes("GIF", mode="P", color=1), "me.gif", "image/gif", 415),
    ("svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "me.svg", "image/svg+xml", 415),
    ("huge dimensions", None, "me.png", "image/png", 400),
    ("too large", b"\xff\xd8\xff" + os.urandom(profiles.PHOTO_MAX_BYTES), "me.jpg", "image/jpeg", 413),
    ("nothing", b"", "", "application/octet-stream", 400),
], ids=["text named .jpg", "truncated", "gif", "svg", "huge dimensions", "too large", "nothing"])
def test_bad_uploads_are_refused_and_nothing_is_stored(app, client, make_expert, name, data, filename,
                                                       content_type, status):
    from .test_profiles import _bomb_png

    expert = make_expert()
    login(client, expert)
    r = upload(client, _bomb_png(20_000, 20_000) if data is None else data, filename, content_type)
    assert r.status_code == status
    assert photos(app) == []
    profile = stored(expert.id)[1]
    assert profile is None or profile.photo is None
    if status != 413:
        assert 'id="photo-error"' in r.get_data(as_text=True)


def test_a_body_over_the_upload_limit_is_refused_unread(app, client, make_expert):
    from .test_errors import Unread

    expert = make_expert()
    login(client, expert)
    stream = Unread()
    r = client.post("/dashboard/profile/photo", content_type="multipart/form-data; boundary=x",
                    environ_overrides={"wsgi.input": stream, "CONTENT_LENGTH": str(6 * 1024 * 1024)})
    assert r.status_code == 413 and stream.read_bytes == 0 and photos(app) == []


def test_the_upload_limit_is_the_photos_not_the_default(app):
    assert profiles.PHOTO_MAX_BYTES > app.config["MAX_CONTENT_LENGTH"]


@pytest.mark.parametrize("name", ["../secret_key", "x.jpg", "AAAAAAAAAAAAAAAAAAAAAA.png", "%2e%2e"])
def test_only_photo_names_are_served(client, name):
    assert client.get(f"/media/photos/{name}").status_code == 404


# ---- the public page ---------------------------------------------------------------------------

def test_the_public_profile_shows_everything_with_previews(app, client, make_expert):
    expert = make_expert(handle="ann", price=150)
    login(client, expert)
    client.post("/dashboard/profile", data=form())
    upload(client, image_bytes())
    [photo] = photos(app)
    client.get("/logout")

    r = client.get("/ann")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    for text in ("Immigration lawyer", "Twelve years of visas.", "LL.M., Leiden", "Bar of Amsterdam", "English",
                 "German", "Portuguese (BR)", "Visa check", "Is your file complete?", "$1.50 a minute",
                 "First minute free", 'id="live-status"', "Offline", 'data-callme-expert="ann"',
                 '<script async src="/embed.js"></script>'):
        assert text in page, text
    assert f'<img class="profile-photo" src="/media/photos/{photo}"' in page
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    meta = dict(re.findall(r'<meta property="(og:[a-z:]+)" content="([^"]*)"', page))
    assert meta["og:title"] == "Ann · Immigration lawyer"
    assert meta["og:description"] == "Immigration lawyer"
    assert meta["og:url"] == "http://localhost/ann"
    assert meta["og:image"] == f"http://localhost/media/photos/{photo}"

    ld = json.loads(re.search(r'<script type="application/ld\+json">(.*?)</script>', page, re.S).group(1))
    assert ld["@type"] == "Person" and ld["name"] == "Ann" and ld["jobTitle"] == "Immigration lawyer"
    assert ld["knowsLanguage"] == ["en", "de", "pt-BR"] and ld["image"] == meta["og:image"]
    assert ld["makesOffer"]["priceSpecification"]["price"] == "1.50"
    assert ld["makesOffer"]["priceSpecification"]["priceCurrency"] == "USD"


def test_the_live_status_is_server_rendered(client, make_expert):
    make_expert(handle="bob", online=True)
    assert "Online now" in client.get("/bob").get_data(as_text=True)


@pytest.mark.parametrize("free_seconds, price, text", [
    (60, 150, "First minute free"), (30, 150, "First 30 seconds free"), (0, 150, None), (60, 0, None)])
def test_the_free_time_is_said(client, make_expert, free_seconds, price, text):
    make_expert(handle="cat", price=price, free_seconds=free_seconds)
    page = client.get("/cat").get_data(as_text=True)
    if text:
        assert text in page
    else:
        assert "free</span>" not in page
    if price == 0:
        assert 'id="price">Free<' in page


def test_everything_the_expert_writes_is_escaped(client, make_expert):
    expert = make_expert(handle="eve")
    login(client, expert)
    evil = '<script>alert("x")</script></script><img src=x onerror=alert(1)>'
    r = client.post("/dashboard/profile", data=form(
        headline=evil[:120], bio=evil, qualifications=evil, service_name_0=evil[:80], service_line_0=evil[:160]))
    assert r.status_code == 303
    page = client.get("/eve").get_data(as_text=True)
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(" in page
    ld = re.search(r'<script type="application/ld\+json">(.*?)</script>', page, re.S).group(1)
    assert "</script" not in ld.lower() and "<" not in ld
    assert json.loads(ld)["description"] == evil


def test_an_unknown_handle_is_a_404_and_static_routes_win(app, client):
    assert client.get("/nobody").status_code == 404
    adapter = app.url_map.bind("localhost")
    for path, endpoint in [("/login", "account.login"), ("/console", "console.console"),
                           ("/dashboard", "dashboard.dashboard"), ("/healthz", "healthz"),
                           ("/embed.js", "pages.embed_js"), ("/ray", "public_profile.profile")]:
        assert adapter.match(path)[0] == endpoint, path


def test_the_public_page_reads_without_javascript_and_stays_small(client, make_expert):
    expert = make_expert(handle="dan")
    login(client, expert)
    client.post("/dashboard/profile", data=form())
    page = client.get("/dan").data
    assert len(page) < 16 * 1024
    text = re.sub(rb"<script.*?</script>", b"", page, flags=re.S)
    assert b"Immigration lawyer" in text and b"$1.50 a minute" in text
