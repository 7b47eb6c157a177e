"""Intro videos (``callme.experts.media``, ``callme.experts.probe``): first bytes, the probe in its
subprocess (real PyAV on real tiny videos made here), the rules, storing, replacing, deleting.
The upload page and serving: test_video_pages.py."""
import contextlib
import http.server
import json
import os
import subprocess
import sys
import threading

import av
import pytest
from PIL import Image

from callme.experts import media
from callme.experts.media import ExpertVideo, Settings, VideoRefused
from callme.extensions import db

from .videos import ENCODERS, dash_manifest, hls_playlist, make_video, truncated


def settings_in(directory, **kw):
    values = dict(max_bytes=50 * 1024 * 1024, max_seconds=120, max_long_side=1920, max_short_side=1080,
                  probe_timeout=10.0)
    values.update(kw)
    return Settings(str(directory), **values)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """One of each tiny video (2 s, 64x48), made once for the module: {name: path}."""
    directory = tmp_path_factory.mktemp("videos")
    made = {name: make_video(directory / name, name) for name in
            ("h264-aac.mp4", "h264.mp4", "vp9-opus.webm", "vp8.webm", "vp8-vorbis.webm", "mpeg4-aac.mp4",
             "mjpeg.mp4", "aac-only.mp4", "opus-only.webm", "vp9-opus.mkv")}
    made["faststart.mp4"] = make_video(directory / "faststart.mp4", "h264-aac.mp4",
                                       options={"movflags": "faststart"})
    made["long.webm"] = make_video(directory / "long.webm", "vp8.webm", seconds=6, fps=5)
    return made


def probe_and_check(path, settings, tmp_path):
    kind = media.sniff(str(path))
    facts = media.run_probe(str(path), kind, str(tmp_path / "poster.jpg"), settings.probe_timeout)
    return media.check(facts, kind, settings)


def test_this_pyav_build_has_the_encoders_the_tests_use():
    # libx264 for H.264 (no OpenH264 needed); if a build lacks one, the tests of it fail here first.
    missing = [name for name in ENCODERS if name not in av.codecs_available]
    assert not missing, f"this PyAV build lacks the encoders {missing}"


# ---- the first bytes ---------------------------------------------------------------------------

@pytest.mark.parametrize("content, code", [
    (b"hello, this is text pretending to be a video\n" * 10, "not_a_video"),
    (hls_playlist("http://127.0.0.1:9/segment.ts"), "not_a_video"),
    (b"\xef\xbb\xbf" + hls_playlist("http://127.0.0.1:9/segment.ts"), "not_a_video"),
    (dash_manifest("http://127.0.0.1:9/video.mp4"), "not_a_video"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 100, "not_a_video"),       # a JPEG
    (b"RIFF\x00\x00\x00\x00AVI LIST" + b"\x00" * 100, "not_a_video"),            # AVI
    (b"\x00\x00\x00\x14ftyp", "not_a_video"),                                     # too short to be MP4
    (b"", "not_a_video"),
])
def test_sniff_refuses_what_is_not_mp4_or_webm(tmp_path, content, code):
    path = tmp_path / "upload.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoRefused) as refused:
        media.sniff(str(path))
    assert refused.value.code == code and refused.value.status == 415


def test_sniff_names_mp4_and_webm_by_content_and_refuses_matroska_that_is_not_webm(videos, tmp_path):
    assert media.sniff(str(videos["h264-aac.mp4"])) == "mp4"
    assert media.sniff(str(videos["vp8.webm"])) == "webm"
    renamed = tmp_path / "video.mp4"  # the name says nothing
    renamed.write_bytes(videos["vp8.webm"].read_bytes())
    assert media.sniff(str(renamed)) == "webm"
    with pytest.raises(VideoRefused) as refused:
        media.sniff(str(videos["vp9-opus.mkv"]))
    assert refused.value.code == "unsupported_video" and "matroska" in refused.value.message


def test_ebml_doctype_reads_the_header():
    assert media.ebml_doctype(bytes.fromhex("1a45dfa3 9f 4286 81 01 42f7 81 01 42f2 81 04 42f3 81 08 "
                                            "4282 84 7765626d 4287 81 04 4285 81 02")) == "webm"
    assert media.ebml_doctype(bytes.fromhex("1a45dfa3 8a 4282 88 6d6174726f736b61")) == "matroska"
    assert media.ebml_doctype(bytes.fromhex("1a45dfa3 ff")) is None
    assert media.ebml_doctype(bytes.fromhex("1a45dfa3 00")) is None


# ---- the probe and the rules, on real files ------------------------------------------------------

@pytest.mark.parametrize("name, container, video, audio", [
    ("h264-aac.mp4", "mp4", "h264", "aac"),
    ("h264.mp4", "mp4", "h264", None),
    ("faststart.mp4", "mp4", "h264", "aac"),
    ("vp9-opus.webm", "webm", "vp9", "opus"),
    ("vp8.webm", "webm", "vp8", None),
    ("vp8-vorbis.webm", "webm", "vp8", "vorbis"),
])
def test_accepted_videos_and_their_facts(videos, tmp_path, name, container, video, audio):
    facts = probe_and_check(videos[name], settings_in(tmp_path), tmp_path)
    assert (facts.container, facts.video_codec, facts.audio_codec) == (container, video, audio)
    assert (facts.width, facts.height) == (64, 48)
    assert 1900 <= facts.duration_ms <= 2100
    with Image.open(tmp_path / "poster.jpg") as poster:  # the poster: a real JPEG of the frame
        assert poster.format == "JPEG" and poster.size == (64, 48)


@pytest.mark.parametrize("name, code, words", [
    ("mpeg4-aac.mp4", "unsupported_video", "mpeg4"),    # MPEG-4 Part 2 in MP4
    ("mjpeg.mp4", "unsupported_video", "mjpeg"),        # MJPEG in MP4
    ("aac-only.mp4", "unsupported_video", "no video"),  # sound only
    ("opus-only.webm", "unsupported_video", "no video"),
])
def test_wrong_codecs_are_refused_with_the_reason(videos, tmp_path, name, code, words):
    with pytest.raises(VideoRefused) as refused:
        probe_and_check(videos[name], settings_in(tmp_path), tmp_path)
    assert refused.value.code == code and refused.value.status == 415
    assert words in refused.value.message


@pytest.mark.parametrize("name, fraction", [
    ("h264-aac.mp4", 0.6),    # the index (moov) is at the end: gone
    ("faststart.mp4", 0.6),   # the index first: packets missing at the end
    ("faststart.mp4", 0.97),  # a few bytes missing: the last packet is cut
    ("vp9-opus.webm", 0.6),
    ("vp8.webm", 0.5),
])
def test_truncated_files_are_refused(videos, tmp_path, name, fraction):
    cut = truncated(videos[name], tmp_path / f"cut-{name}", fraction)
    with pytest.raises(VideoRefused) as refused:
        probe_and_check(cut, settings_in(tmp_path), tmp_path)
    assert refused.value.code == "damaged_video" and refused.value.status == 422


def test_too_long_is_refused_by_the_configured_limit(videos, tmp_path):
    assert probe_and_check(videos["long.webm"], settings_in(tmp_path, max_seconds=6), tmp_path).duration_ms >= 5900
    with pytest.raises(VideoRefused) as refused:
        probe_and_check(videos["long.webm"], settings_in(tmp_path, max_seconds=5), tmp_path)
    assert refused.value.code == "video_too_long" and "at most 5 seconds" in refused.value.message


@pytest.mark.parametrize("size, accepted", [
    ((1920, 1080), True), ((1080, 1920), True),    # 1080p either way up
    ((1920, 1088), False), ((2048, 1080), False), ((1088, 1920), False),
])
def test_resolution_fits_1080p_either_way_up(tmp_path, size, accepted):
    path = make_video(tmp_path / "big.mp4", "h264.mp4", seconds=0.2, size=size, fps=10)
    if accepted:
        assert (probe_and_check(path, settings_in(tmp_path), tmp_path).width,) == (size[0],)
    else:
        with pytest.raises(VideoRefused) as refused:
            probe_and_check(path, settings_in(tmp_path), tmp_path)
        assert refused.value.code == "resolution_too_high" and f"{size[0]}×{size[1]}" in refused.value.message


def test_the_poster_is_taken_10_percent_in(videos, tmp_path):
    kind = media.sniff(str(videos["long.webm"]))
    facts = media.run_probe(str(videos["long.webm"]), kind, str(tmp_path / "p.jpg"), 10)
    assert facts["video"]["poster_time"] == pytest.approx(0.6, abs=0.21)  # 6 s, frames every 0.2 s


# ---- the probe cannot be made to fetch anything, to hang or to crash the caller -------------------

@pytest.fixture
def web_server():
    """A loopback HTTP server that counts the requests it gets."""
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("kind", ["mp4", "webm"])
@pytest.mark.parametrize("make", [hls_playlist, dash_manifest])
def test_the_probe_never_follows_a_playlist(tmp_path, web_server, kind, make):
    url, hits = web_server
    path = tmp_path / "playlist.m3u8"
    path.write_bytes(make(url + "/segment.ts"))
    facts = media.run_probe(str(path), kind, str(tmp_path / "p.jpg"), 10)
    assert facts["ok"] is False
    with pytest.raises(VideoRefused):
        media.check(facts, kind, settings_in(tmp_path))
    assert hits == []
    if make is hls_playlist:
        # ...while ffmpeg's HLS demuxer, allowed HTTP, fetches the segment: the test can fail.
        with contextlib.suppress(av.FFmpegError):
            av.open(str(path), format="hls", options={"protocol_whitelist": "file,http,tcp"}).close()
        assert hits


def test_a_probe_that_hangs_is_killed_after_the_time_limit(tmp_path):
    hang = [sys.executable, "-c", "import time; time.sleep(60)"]
    path = make_video(tmp_path / "v.mp4", "h264.mp4", seconds=0.2)
    with pytest.raises(VideoRefused) as refused:
        media.run_probe(str(path), "mp4", str(tmp_path / "p.jpg"), 0.5, argv=hang)
    assert refused.value.code == "damaged_video" and "longer than 0.5 seconds" in refused.value.message


@pytest.mark.parametrize("program", [
    "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)",  # a decoder crash
    "import sys; sys.exit(3)",
    "print('not json')",
])
def test_a_probe_that_crashes_is_a_refusal_not_an_error(tmp_path, program):
    with pytest.raises(VideoRefused) as refused:
        media.run_probe(str(tmp_path / "v.mp4"), "mp4", str(tmp_path / "p.jpg"), 5,
                        argv=[sys.executable, "-c", program])
    assert refused.value.code == "damaged_video"


def test_the_probe_runs_as_a_module_too(videos):
    out = subprocess.run([sys.executable, "-m", "callme.experts.probe", str(videos["vp8.webm"]), "--kind", "webm"],
                         capture_output=True, text=True, check=True, timeout=30)
    facts = json.loads(out.stdout)
    assert facts["ok"] and facts["streams"][0]["codec"] == "vp8"


# ---- storing, replacing, deleting ----------------------------------------------------------------

def upload(settings, source):
    """Copy ``source`` into a temporary upload file of the video directory, as the view does."""
    f = media.open_temp(settings)
    with f:
        f.write(source.read_bytes())
    return f.name


def files_in(directory):
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def test_accept_store_replace_and_delete(app, make_expert, videos, tmp_path):
    store = settings_in(tmp_path / "media")
    ray = make_expert("ray", price=0)
    assert media.video_of(ray.id) is None

    row = media.accept_upload(ray.id, upload(store, videos["h264-aac.mp4"]), store)
    first = (row.file_name, row.poster_name)
    assert files_in(store.directory) == sorted(first)  # the upload's temporary file is gone
    assert row.file_name.endswith(".mp4") and row.poster_name.endswith(".jpg")
    assert (row.container, row.video_codec, row.audio_codec, row.width, row.height) == ("mp4", "h264", "aac", 64, 48)
    assert row.bytes == videos["h264-aac.mp4"].stat().st_size
    assert (tmp_path / "media" / row.file_name).read_bytes() == videos["h264-aac.mp4"].read_bytes()
    assert media.video_of(ray.id) == {
        "url": f"/media/videos/{row.file_name}", "poster_url": f"/media/posters/{row.poster_name}",
        "mime": "video/mp4", "width": 64, "height": 48, "duration_ms": row.duration_ms}

    row = media.accept_upload(ray.id, upload(store, videos["vp9-opus.webm"]), store)
    assert files_in(store.directory) == sorted([row.file_name, row.poster_name])  # the old ones are gone
    assert row.file_name.endswith(".webm") and media.video_of(ray.id)["mime"] == "video/webm"
    assert not set(first) & {row.file_name, row.poster_name}
    assert db.session.query(ExpertVideo).count() == 1

    assert media.remove_video(ray.id, store) is True
    assert files_in(store.directory) == [] and media.video_of(ray.id) is None
    assert media.remove_video(ray.id, store) is False


@pytest.mark.parametrize("name", ["mjpeg.mp4", "aac-only.mp4", "cut", "text", "big"])
def test_a_refusal_stores_nothing_and_keeps_the_video_there_was(app, make_expert, videos, tmp_path, name):
    store = settings_in(tmp_path / "media", max_bytes=40_000)
    ray = make_expert("ray", price=0)
    kept = media.accept_upload(ray.id, upload(store, videos["vp8.webm"]), store)
    before = files_in(store.directory)
    source = {"cut": lambda: truncated(videos["vp9-opus.webm"], tmp_path / "cut.webm"),
              "text": lambda: (tmp_path / "t.mp4").write_bytes(b"just text") and tmp_path / "t.mp4",
              "big": lambda: make_video(tmp_path / "big.webm", "vp9-opus.webm", seconds=4)}.get(name, lambda: videos[name])()
    with pytest.raises(VideoRefused):
        media.accept_upload(ray.id, upload(store, source), store)
    assert files_in(store.directory) == before
    assert media.video_of(ray.id)["url"].endswith(kept.file_name)


def test_of_two_uploads_at_once_one_wins_and_the_other_stores_nothing(app, make_expert, videos, tmp_path,
                                                                       monkeypatch):
    store = settings_in(tmp_path / "media")
    ray = make_expert("ray", price=0)
    media.accept_upload(ray.id, upload(store, videos["vp8.webm"]), store)
    real_probe = media.run_probe

    def probe_while_another_upload_commits(*args, **kwargs):
        monkeypatch.setattr(media, "run_probe", real_probe)
        media.accept_upload(ray.id, upload(store, videos["h264.mp4"]), store)  # the other upload wins
        return real_probe(*args, **kwargs)

    monkeypatch.setattr(media, "run_probe", probe_while_another_upload_commits)
    with pytest.raises(media.VideoConflict):
        media.accept_upload(ray.id, upload(store, videos["h264-aac.mp4"]), store)
    row = media.video_row(ray.id)
    assert (row.video_codec, row.audio_codec) == ("h264", None)
    assert files_in(store.directory) == sorted([row.file_name, row.poster_name])


def test_sweep_removes_only_old_temporary_files(tmp_path):
    store = settings_in(tmp_path / "media")
    old, fresh = media.open_temp(store), media.open_temp(store)
    old.close(), fresh.close()
    kept = tmp_path / "media" / "AAAAAAAAAAAAAAAAAAAAAAAA.mp4"
    kept.write_bytes(b"a stored video")
    os.utime(old.name, (1_000, 1_000))
    os.utime(kept, (1_000, 1_000))
    assert media.sweep(store, 3600) == 1
    assert sorted(os.listdir(store.directory)) == sorted([os.path.basename(fresh.name), kept.name])
    assert media.sweep(settings_in(tmp_path / "nowhere"), 0) == 0
