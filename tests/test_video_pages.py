"""The intro video's pages (``callme.web.media``) through the test client: upload, refusals,
replace, delete; serving videos and posters with HTTP Range and caching. And the same Range
requests against a live gunicorn server."""
import io
import os
import re
import time

import pytest
import requests
from PIL import Image

from callme.experts import media
from callme.experts.media import ExpertVideo
from callme.extensions import db

from .conftest import CSRF, login, seed_expert
from .videos import dash_manifest, hls_playlist, make_video, truncated





@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    directory = tmp_path_factory.mktemp("page-videos")
    made = {name: make_video(directory / name, name) for name in
            ("h264-aac.mp4", "vp9-opus.webm", "vp8.webm", "mpeg4-aac.mp4", "mjpeg.mp4", "aac-only.mp4")}
    made["cut.mp4"] = truncated(made["h264-aac.mp4"], directory / "cut.mp4")
    made["cut.webm"] = truncated(made["vp9-opus.webm"], directory / "cut.webm")
    return made


@pytest.fixture
def video_dir(tmp_path):
    return tmp_path / "videos"


@pytest.fixture
def site(make_app, video_dir):
    """An app keeping videos in the test's directory, and a logged-in expert's client."""
    def make(**config):
        app = make_app(VIDEO_DIR=str(video_dir), **config)
        from .conftest import new_expert

        expert = new_expert(None, "ray", price=0)
        client = app.test_client()
        login(client, expert)
        return app, client, expert
    return make


def post_video(client, content, filename="video.mp4", content_type="video/mp4", csrf=CSRF):
    data = {"video": (io.BytesIO(content), filename, content_type)}
    if csrf is not None:
        data["csrf"] = csrf
    return client.post("/dashboard/video", data=data, content_type="multipart/form-data")


def fetch(client, path, **kw):
    """GET through the test client, the body read and the file behind it closed."""
    r = client.get(path, **kw)
    r.get_data()
    r.close()
    return r


def stored():
    """The table's rows."""
    return db.session.query(ExpertVideo).count()


def files(video_dir):
    return sorted(os.listdir(video_dir)) if os.path.isdir(video_dir) else []


# ---- logged in only ---------------------------------------------------------------------------

@pytest.mark.parametrize("method, path", [
    ("get", "/dashboard/video"), ("post", "/dashboard/video"), ("post", "/dashboard/video/delete"),
])
def test_the_video_pages_need_a_logged_in_expert(client, method, path):
    r = getattr(client, method)(path)
    assert r.status_code == 302 and r.headers["Location"].endswith("/login")


# ---- upload, replace, delete ------------------------------------------------------------------

def test_upload_shows_the_video_and_serves_it(site, videos, video_dir):
    app, client, ray = site()
    page = fetch(client, "/dashboard/video")
    assert page.status_code == 200 and 'id="no-video"' in page.get_data(as_text=True)
    assert 'href="/dashboard/video"' in page.get_data(as_text=True)  # in the expert's navigation

    r = post_video(client, videos["h264-aac.mp4"].read_bytes(), "my intro.mov", "application/octet-stream")
    assert r.status_code == 302 and r.headers["Location"].endswith("/dashboard/video?saved=1")
    video = media.video_of(ray.id)
    assert video["mime"] == "video/mp4" and (video["width"], video["height"]) == (64, 48)
    html = fetch(client, "/dashboard/video?saved=1").get_data(as_text=True)
    assert 'id="video-saved"' in html and f'src="{video["url"]}"' in html and f'poster="{video["poster_url"]}"' in html
    assert "h264 + aac" in html

    r = fetch(client, video["url"])
    assert r.status_code == 200 and r.data == videos["h264-aac.mp4"].read_bytes()
    assert r.mimetype == "video/mp4"
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["ETag"]

    poster = fetch(client, video["poster_url"])
    assert poster.status_code == 200 and poster.mimetype == "image/jpeg"
    with Image.open(io.BytesIO(poster.data)) as image:
        assert image.format == "JPEG" and image.size == (64, 48)
    assert files(video_dir) == sorted([video["url"].rsplit("/", 1)[1], video["poster_url"].rsplit("/", 1)[1]])


def test_the_public_profile_shows_the_video_with_its_poster(site, videos):
    app, client, ray = site()
    assert "<video" not in fetch(client, "/ray").get_data(as_text=True)
    assert post_video(client, videos["vp9-opus.webm"].read_bytes(), "intro.webm", "video/webm").status_code == 302
    video = media.video_of(ray.id)
    html = fetch(app.test_client(), "/ray").get_data(as_text=True)  # a visitor, not logged in
    assert f'poster="{video["poster_url"]}"' in html and 'preload="metadata"' in html
    assert f'<source src="{video["url"]}" type="video/webm">' in html
    assert f'<meta property="og:video" content="http://localhost{video["url"]}">' in html


def test_replace_removes_the_old_files_and_delete_removes_all(site, videos, video_dir):
    app, client, ray = site()
    assert post_video(client, videos["h264-aac.mp4"].read_bytes()).status_code == 302
    old = media.video_of(ray.id)
    assert post_video(client, videos["vp9-opus.webm"].read_bytes(), "x.webm", "video/webm").status_code == 302
    new = media.video_of(ray.id)
    assert new["mime"] == "video/webm" and new["url"] != old["url"]
    assert len(files(video_dir)) == 2
    assert fetch(client, old["url"]).status_code == 404 and fetch(client, old["poster_url"]).status_code == 404
    assert fetch(client, new["url"]).mimetype == "video/webm"

    assert client.post("/dashboard/video/delete", data={}).status_code == 400  # no CSRF token
    r = client.post("/dashboard/video/delete", data={"csrf": CSRF})
    assert r.status_code == 302 and r.headers["Location"].endswith("saved=deleted")
    assert files(video_dir) == [] and media.video_of(ray.id) is None and stored() == 0
    assert fetch(client, new["url"]).status_code == 404
    assert 'id="video-deleted"' in fetch(client, "/dashboard/video?saved=deleted").get_data(as_text=True)


REFUSALS = [
    # name, what is sent (a videos key or bytes), file name, Content-Type, status, code
    ("text named .mp4", b"Hello! I am not a video at all.\n" * 20, "intro.mp4", "video/mp4", 415, "not_a_video"),
    ("HLS playlist named .m3u8", hls_playlist("http://127.0.0.1:9/s.ts"), "intro.m3u8",
     "application/vnd.apple.mpegurl", 415, "not_a_video"),
    ("HLS playlist named .mp4", hls_playlist("http://127.0.0.1:9/s.ts"), "intro.mp4", "video/mp4", 415, "not_a_video"),
    ("DASH manifest", dash_manifest("http://127.0.0.1:9/v.mp4"), "intro.mp4", "video/mp4", 415, "not_a_video"),
    ("truncated MP4", "cut.mp4", "intro.mp4", "video/mp4", 422, "damaged_video"),
    ("truncated WebM", "cut.webm", "intro.webm", "video/webm", 422, "damaged_video"),
    ("MPEG-4 Part 2 in MP4", "mpeg4-aac.mp4", "intro.mp4", "video/mp4", 415, "unsupported_video"),
    ("MJPEG in MP4", "mjpeg.mp4", "intro.mp4", "video/mp4", 415, "unsupported_video"),
    ("sound only", "aac-only.mp4", "intro.mp4", "video/mp4", 415, "unsupported_video"),
    ("an empty file", b"", "intro.mp4", "video/mp4", 400, "no_file"),
]


@pytest.mark.parametrize("name, sent, filename, content_type, status, code", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_each_bad_upload_is_refused_with_the_reason_and_nothing_is_stored(
        site, videos, video_dir, name, sent, filename, content_type, status, code):
    app, client, ray = site()
    assert post_video(client, videos["vp8.webm"].read_bytes(), "v.webm", "video/webm").status_code == 302
    before, kept = files(video_dir), media.video_of(ray.id)
    content = videos[sent].read_bytes() if isinstance(sent, str) else sent
    r = post_video(client, content, filename, content_type)
    assert r.status_code == status
    html = r.get_data(as_text=True)
    assert f'data-code="{code}"' in html and "Not saved:" in html
    assert files(video_dir) == before and media.video_of(ray.id) == kept and stored() == 1


def test_too_long_by_the_configured_limit(site, videos, video_dir):
    app, client, ray = site(VIDEO_MAX_SECONDS=1)
    r = post_video(client, videos["vp8.webm"].read_bytes(), "v.webm", "video/webm")  # 2 s
    assert r.status_code == 422 and 'data-code="video_too_long"' in r.get_data(as_text=True)
    assert "at most 1 seconds" in r.get_data(as_text=True)
    assert files(video_dir) == [] and stored() == 0


@pytest.mark.parametrize("max_bytes, padding", [
    (1_000, 100_000),  # the body's Content-Length is over the limit: refused before a byte is read
    (34_000, 0),       # the body fits in the limit's slack for the form, the file does not
])
def test_too_large_is_refused_with_413(site, videos, video_dir, max_bytes, padding):
    app, client, ray = site(VIDEO_MAX_BYTES=max_bytes)
    content = videos["h264-aac.mp4"].read_bytes() + b"\0" * padding
    assert len(content) > max_bytes
    r = post_video(client, content)
    assert r.status_code == 413
    assert 'data-code="too_large"' in r.get_data(as_text=True)
    assert files(video_dir) == [] and stored() == 0


def test_a_forged_form_stores_nothing(site, videos, video_dir):
    app, client, ray = site()
    r = post_video(client, videos["h264-aac.mp4"].read_bytes(), csrf="wrong")
    assert r.status_code == 400
    r = post_video(client, videos["h264-aac.mp4"].read_bytes(), csrf=None)
    assert r.status_code == 400
    assert files(video_dir) == [] and stored() == 0


def test_no_file_field_is_a_clear_400(site, video_dir):
    app, client, ray = site()
    r = client.post("/dashboard/video", data={"csrf": CSRF}, content_type="multipart/form-data")
    assert r.status_code == 400 and 'data-code="no_file"' in r.get_data(as_text=True)
    assert files(video_dir) == []


def test_the_upload_has_its_own_body_time(site, videos):
    """BODY_TIMEOUT is for small bodies; the upload gets VIDEO_BODY_TIMEOUT."""
    app, client, ray = site(BODY_TIMEOUT=0.0)
    assert post_video(client, videos["vp8.webm"].read_bytes(), "v.webm", "video/webm").status_code == 302
    # the other forms keep BODY_TIMEOUT: this one has no time at all
    assert client.post("/dashboard/video/delete", data={"csrf": CSRF}).status_code == 408
    app, client, ray = site(BODY_TIMEOUT=0.0, VIDEO_BODY_TIMEOUT=0.0)
    assert post_video(client, videos["vp8.webm"].read_bytes(), "v.webm", "video/webm").status_code == 408


def test_uploads_are_rate_limited_per_expert(site, videos, video_dir):
    app, client, ray = site(RATE_LIMIT_VIDEO="2/3600")
    for _ in range(2):
        assert post_video(client, videos["vp8.webm"].read_bytes(), "v.webm", "video/webm").status_code == 302
    r = post_video(client, videos["h264-aac.mp4"].read_bytes())
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert media.video_of(ray.id)["mime"] == "video/webm" and len(files(video_dir)) == 2


# ---- serving, with Range -----------------------------------------------------------------------

@pytest.fixture
def served(site, videos):
    app, client, ray = site()
    assert post_video(client, videos["h264-aac.mp4"].read_bytes()).status_code == 302
    return client, media.video_of(ray.id)["url"], videos["h264-aac.mp4"].read_bytes()


@pytest.mark.parametrize("header, start, end", [
    ("bytes=0-99", 0, 99),
    ("bytes=100-", 100, None),
    ("bytes=-50", -50, None),
    ("bytes=1000-1000", 1000, 1000),
])
def test_range_requests_get_206_with_the_bytes(served, header, start, end):
    client, url, content = served
    r = fetch(client, url, headers={"Range": header})
    assert r.status_code == 206
    size = len(content)
    first = start if start >= 0 else size + start
    last = size - 1 if end is None else end
    assert r.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
    assert r.data == content[first:last + 1]
    assert int(r.headers["Content-Length"]) == last - first + 1
    assert r.mimetype == "video/mp4" and r.headers["Accept-Ranges"] == "bytes"


def test_unsatisfiable_ranges_get_416_and_a_stale_if_range_gets_the_whole_file(served):
    client, url, content = served
    r = fetch(client, url, headers={"Range": f"bytes={len(content)}-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{len(content)}"
    etag = fetch(client, url).headers["ETag"]
    assert fetch(client, url, headers={"Range": "bytes=0-9", "If-Range": etag}).status_code == 206
    stale = fetch(client, url, headers={"Range": "bytes=0-9", "If-Range": '"something-else"'})
    assert stale.status_code == 200 and stale.data == content
    assert fetch(client, url, headers={"If-None-Match": etag}).status_code == 304


@pytest.mark.parametrize("path", [
    "/media/videos/AAAAAAAAAAAAAAAAAAAAAAAA.mp4",          # a name no row holds
    "/media/videos/..%2F..%2Fcallme.sqlite",
    "/media/videos/.upload-AAAAAAAAAAAAAAAAAAAA.part",     # a temporary upload
    "/media/posters/AAAAAAAAAAAAAAAAAAAAAAAA.jpg",
    "/media/posters/AAAAAAAAAAAAAAAAAAAAAAAA.mp4",
])
def test_unknown_names_are_404(served, path):
    client, url, content = served
    assert fetch(client, path).status_code == 404


def test_a_video_name_is_not_a_poster_name(served):
    client, url, content = served
    name = url.rsplit("/", 1)[1]
    assert fetch(client, f"/media/posters/{name}").status_code == 404


# ---- a live server: Range through gunicorn --------------------------------------------------------

def live_login(server, handle):
    """A requests session logged in on a live server through its login form."""
    session = requests.Session()
    page = session.get(server.url + "/login", timeout=5)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = session.post(server.url + "/login", data={"csrf": csrf, "email": f"{handle}@example.com",
                                                 "password": "password123"}, timeout=5, allow_redirects=False)
    assert r.status_code == 302, r.text
    return session


@pytest.mark.live
def test_range_requests_through_a_live_gunicorn_server(live_factory, videos, tmp_path):
    server = live_factory(env={"VIDEO_DIR": str(tmp_path / "live-videos"), "VIDEO_MAX_BYTES": "200000",
                               "BODY_TIMEOUT": "1"})
    seed_expert(server, "vid", price=0)
    session = live_login(server, "vid")
    page = session.get(server.url + "/dashboard/video", timeout=5)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    content = videos["vp9-opus.webm"].read_bytes()
    # Sent slowly (chunked, over 1.5 s): longer than BODY_TIMEOUT, within VIDEO_BODY_TIMEOUT.
    boundary = "callme-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"video\"; filename=\"intro.webm\"\r\n"
            f"Content-Type: video/webm\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()

    def slowly(data, pieces=5):
        step = len(data) // pieces + 1
        for i in range(0, len(data), step):
            time.sleep(0.3)
            yield data[i:i + step]

    r = session.post(server.url + "/dashboard/video", data=slowly(body), timeout=30, allow_redirects=False,
                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 302, r.text
    html = session.get(server.url + "/dashboard/video", timeout=5).text
    url = server.url + re.search(r'<source src="([^"]+)" type="video/webm">', html).group(1)

    anonymous = requests.Session()  # a visitor, not logged in
    whole = anonymous.get(url, timeout=5)
    assert whole.status_code == 200 and whole.content == content
    assert whole.headers["Content-Type"] == "video/webm" and whole.headers["Accept-Ranges"] == "bytes"
    assert "immutable" in whole.headers["Cache-Control"] and whole.headers["X-Content-Type-Options"] == "nosniff"
    part = anonymous.get(url, headers={"Range": "bytes=100-1099"}, timeout=5)
    assert part.status_code == 206 and part.content == content[100:1100]
    assert part.headers["Content-Range"] == f"bytes 100-1099/{len(content)}"
    assert part.headers["Content-Length"] == "1000"
    tail = anonymous.get(url, headers={"Range": "bytes=-10"}, timeout=5)
    assert tail.status_code == 206 and tail.content == content[-10:]
    bad = anonymous.get(url, headers={"Range": f"bytes={len(content) + 10}-"}, timeout=5)
    assert bad.status_code == 416
    # and the connection is still good for the next request (nothing left unread on it)
    again = anonymous.get(url, headers={"Range": "bytes=0-3"}, timeout=5)
    assert again.status_code == 206 and again.content == b"\x1a\x45\xdf\xa3"

    # Too large: refused from the Content-Length, before the body is read.
    r = session.post(server.url + "/dashboard/video", data={"csrf": csrf},
                     files={"video": ("big.webm", b"\x1a\x45\xdf\xa3" + b"\0" * 300_000, "video/webm")},
                     timeout=30, allow_redirects=False)
    assert r.status_code == 413
    assert sorted(os.listdir(tmp_path / "live-videos")) == sorted(
        [url.rsplit("/", 1)[1], re.search(r'poster="/media/posters/([^"]+)"', html).group(1)])
