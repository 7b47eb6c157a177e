"""The expert's intro video: what is accepted, how it is checked, where it is kept.

Accepted: MP4 (H.264 video, AAC audio or none) and WebM (VP8/VP9 video, Opus/Vorbis audio or
none), within the configured size, length and resolution. A file is judged by its content, never
by its name or Content-Type: its first bytes must be an MP4 ``ftyp`` box or a WebM EBML header,
then ``probe.py`` (PyAV, in a subprocess with a time limit) opens it with that demuxer only,
reads every packet and decodes the first frames; truncated files are caught by their last
packet ending before the declared duration. The poster is a JPEG of the frame 10% in (at most
3 s in). Files live under random names in the video directory; the ``expert_videos`` row holds
the names, and a file is served only while a row names it.
"""
import json
import logging
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..models import utcnow  # first: models imports this module (its table) at its end
from ..errors import CallmeError  # noqa: E402,I100

log = logging.getLogger(__name__)

MIME = {"mp4": "video/mp4", "webm": "video/webm"}
# The container names ffmpeg reports for each kind, and the codecs browsers play in it.
FORMAT_NAMES = {"mp4": {"mp4", "mov,mp4,m4a,3gp,3g2,mj2"}, "webm": {"webm", "matroska,webm"}}
VIDEO_CODECS = {"mp4": {"h264"}, "webm": {"vp8", "vp9"}}
AUDIO_CODECS = {"mp4": {"aac"}, "webm": {"opus", "vorbis"}}
KIND_NAMES = {"mp4": "MP4 (H.264 video, AAC audio)", "webm": "WebM (VP8/VP9 video, Opus/Vorbis audio)"}

POSTER_AT, POSTER_MAX_AT = 0.1, 3.0  # the poster is the frame 10% in, but no later than 3 s in
# A file may end this much before the duration it declares (muxers round; tracks differ).
TRUNCATION_SLACK = 0.5  # seconds, or 2% of the duration when that is more
FORM_OVERHEAD = 64 * 1024  # bytes of multipart framing and fields around the file
NAME_BYTES = 18  # secrets.token_urlsafe(18): 24 characters, 144 random bits
PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe.py")


class ExpertVideo(db.Model):
    """An expert's intro video (at most one) and its poster, stored under random names."""

    __tablename__ = "expert_videos"
    __table_args__ = (
        sa.CheckConstraint("container IN ('mp4', 'webm')", name="ck_expert_videos_container"),
        sa.CheckConstraint("width > 0 AND height > 0", name="ck_expert_videos_size"),
        sa.CheckConstraint("duration_ms > 0", name="ck_expert_videos_duration_ms"),
        sa.CheckConstraint("bytes > 0", name="ck_expert_videos_bytes"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    expert_id: Mapped[int] = mapped_column(sa.ForeignKey("experts.id", ondelete="CASCADE"), unique=True)
    file_name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    poster_name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    container: Mapped[str] = mapped_column(sa.String(8))
    video_codec: Mapped[str] = mapped_column(sa.String(16))
    audio_codec: Mapped[str | None] = mapped_column(sa.String(16))
    width: Mapped[int] = mapped_column(sa.Integer)
    height: Mapped[int] = mapped_column(sa.Integer)
    duration_ms: Mapped[int] = mapped_column(sa.Integer)
    bytes: Mapped[int] = mapped_column(sa.BigInteger)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)

    @property
    def mime(self):
        return MIME[self.container]


class VideoRefused(CallmeError):
    """An upload that is not stored, with the reason (the upload page shows it)."""

    STATUS = {"no_file": 400, "too_large": 413, "not_a_video": 415, "unsupported_video": 415}

    def __init__(self, code, message):
        super().__init__(code, message, status=self.STATUS.get(code, 422))


class VideoConflict(CallmeError):
    def __init__(self):
        super().__init__("conflict", "Another upload changed your video meanwhile; reload the page.", status=409)


# ---- settings ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    directory: str
    max_bytes: int
    max_seconds: int
    max_long_side: int   # either orientation: 1920x1080 and 1080x1920 both fit 1920/1080
    max_short_side: int
    probe_timeout: float

    @classmethod
    def of(cls, app):
        """The video settings of an app (VIDEO_DIR defaults to <MEDIA_DIR or instance/media>/videos)."""
        config = app.config
        directory = config.get("VIDEO_DIR") or os.path.join(
            config.get("MEDIA_DIR") or os.path.join(app.instance_path, "media"), "videos")
        return cls(directory, int(config["VIDEO_MAX_BYTES"]), int(config["VIDEO_MAX_SECONDS"]),
                   max(int(config["VIDEO_MAX_WIDTH"]), int(config["VIDEO_MAX_HEIGHT"])),
                   min(int(config["VIDEO_MAX_WIDTH"]), int(config["VIDEO_MAX_HEIGHT"])),
                   float(config["VIDEO_PROBE_TIMEOUT"]))

    def path(self, name):
        return os.path.join(self.directory, name)

    def describe(self):
        """The limits in words, for the upload page."""
        return (f"MP4 (H.264 + AAC) or WebM (VP8/VP9 + Opus/Vorbis), up to {human_bytes(self.max_bytes)}, "
                f"{self.max_seconds} seconds and {self.max_long_side}×{self.max_short_side} (either way up).")


def body_limit(config):
    """The request body limit of the upload: the largest video plus the form around it."""
    return int(config["VIDEO_MAX_BYTES"]) + FORM_OVERHEAD


def human_bytes(n):
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.0f} MiB" if n % (1024 * 1024) == 0 else f"{n / (1024 * 1024):.1f} MiB"
    return f"{n / 1024:.0f} KiB" if n >= 1024 else f"{n} bytes"


# ---- receiving -----------------------------------------------------------------------------

def new_name(extension):
    return f"{secrets.token_urlsafe(NAME_BYTES)}.{extension}"


def open_temp(settings):
    """A new, private temporary file in the video directory (never served: its name starts with
    a dot), opened for writing the upload into."""
    os.makedirs(settings.directory, exist_ok=True)
    path = settings.path(f".upload-{secrets.token_urlsafe(NAME_BYTES)}.part")
    return open(path, "w+b", opener=lambda p, flags: os.open(p, flags | os.O_EXCL, 0o600))


def sweep(settings, older_than, now=None):
    """Remove temporary files left by uploads that died midway (a killed worker): those older
    than ``older_than`` seconds. Returns how many."""
    import time

    now = time.time() if now is None else now
    removed = 0
    try:
        entries = list(os.scandir(settings.directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.name.startswith((".upload-", ".poster-")) and entry.name.endswith(".part"):
            try:
                if entry.stat().st_mtime < now - older_than:
                    remove(entry.path)
                    removed += 1
            except FileNotFoundError:
                pass
    return removed


def remove(*paths):
    for path in paths:
        if path:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
            except OSError:
                log.warning("could not remove %s", path, exc_info=True)


# ---- checking ------------------------------------------------------------------------------

def sniff(path):
    """"mp4" or "webm" from the file's first bytes; refuses anything else (text, playlists,
    images, Matroska that is not WebM)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        doctype = ebml_doctype(head)
        if doctype == "webm":
            return "webm"
        raise VideoRefused("unsupported_video", f"This is a {doctype or 'Matroska'} file; "
                           f"only WebM and MP4 videos are accepted.")
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith((b"#EXTM3U", b"<?xml", b"<MPD")):
        raise VideoRefused("not_a_video", "This is a playlist, not a video file. Upload the video itself "
                           "(MP4 or WebM).")
    raise VideoRefused("not_a_video", "This file is not a video: upload an MP4 or WebM video.")


def _vint(data, pos, strip_marker):
    """An EBML variable-length integer at ``pos``: (value, next position)."""
    first = data[pos]
    length = 8 - first.bit_length() + 1
    if first == 0 or pos + length > len(data):
        raise ValueError("bad EBML integer")
    value = first & (0xFF >> length) if strip_marker else first
    for b in data[pos + 1:pos + length]:
        value = (value << 8) | b
    return value, pos + length


def ebml_doctype(head):
    """The DocType of an EBML header ("webm", "matroska"), or None when unreadable."""
    try:
        _, pos = _vint(head, 0, False)  # the EBML element id, 1A 45 DF A3
        size, pos = _vint(head, pos, True)
        end = min(len(head), pos + size)
        while pos < end:
            element, pos = _vint(head, pos, False)
            size, pos = _vint(head, pos, True)
            if element == 0x4282:
                return head[pos:pos + size].rstrip(b"\0").decode("ascii", "replace")
            pos += size
    except (ValueError, IndexError):
        return None
    return None


def run_probe(path, kind, poster_path, timeout, argv=None):
    """Run the probe in a subprocess killed after ``timeout`` seconds; its JSON facts.
    ``argv`` replaces the program (tests make it hang or crash)."""
    argv = argv or [sys.executable, "-I", PROBE]
    command = [*argv, path, "--kind", kind, "--poster", poster_path, "--poster-at", str(POSTER_AT),
               "--poster-max", str(POSTER_MAX_AT),
               "--cpu-seconds", str(max(1, int(timeout) + 1))]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False,
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"})
    except subprocess.TimeoutExpired:  # run() has killed it
        raise VideoRefused("damaged_video", f"Checking this video took longer than {timeout:g} seconds; "
                           "it is probably damaged. Try exporting it again.")
    if done.returncode != 0:
        log.warning("video probe exited with %s: %s", done.returncode, done.stderr[-2000:])
        raise VideoRefused("damaged_video", "This video could not be read; it is probably damaged. "
                           "Try exporting it again.")
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise VideoRefused("damaged_video", "This video could not be read; try exporting it again.")


@dataclass(frozen=True)
class Facts:
    container: str
    video_codec: str
    audio_codec: str | None
    width: int
    height: int
    duration_ms: int


def check(facts, kind, settings):
    """The rules, applied to the probe's facts: Facts, or VideoRefused with the reason."""
    damaged = "This video is damaged or incomplete (was the upload cut short?). Try exporting it again."
    if not facts.get("ok"):
        raise VideoRefused("damaged_video", damaged)
    if facts.get("format") not in FORMAT_NAMES[kind]:
        raise VideoRefused("unsupported_video", "Only MP4 and WebM videos are accepted.")
    streams = facts.get("streams") or []
    videos = [s for s in streams if s["type"] == "video" and not s.get("attached_pic")]
    audios = [s for s in streams if s["type"] == "audio"]
    if not videos:
        raise VideoRefused("unsupported_video", "This file has no video, only sound: upload a video.")
    if len(videos) > 1 or len(audios) > 1:
        raise VideoRefused("unsupported_video", "This file has several video or sound tracks; upload a video "
                           "with one of each (or no sound).")
    video, audio = videos[0], (audios[0] if audios else None)
    if video["codec"] not in VIDEO_CODECS[kind]:
        raise VideoRefused("unsupported_video", f"Its video is {video['codec'] or 'unknown'}; accepted: "
                           f"{KIND_NAMES['mp4']} or {KIND_NAMES['webm']}.")
    if audio is not None and audio["codec"] not in AUDIO_CODECS[kind]:
        raise VideoRefused("unsupported_video", f"Its sound is {audio['codec'] or 'unknown'}; accepted: "
                           f"{KIND_NAMES['mp4']} or {KIND_NAMES['webm']}.")
    width, height = video.get("width") or 0, video.get("height") or 0
    if width <= 0 or height <= 0:
        raise VideoRefused("damaged_video", damaged)
    if max(width, height) > settings.max_long_side or min(width, height) > settings.max_short_side:
        raise VideoRefused("resolution_too_high", f"The video is {width}×{height}; at most "
                           f"{settings.max_long_side}×{settings.max_short_side} (either way up) is accepted.")

    # Truncation: every packet read, none damaged, and the last ending where the file says it ends.
    ends = [s["end"] for s in (video, audio) if s is not None and s.get("end") is not None]
    if not video.get("packets") or not ends or any(s.get("corrupt") for s in streams):
        raise VideoRefused("damaged_video", damaged)
    last = max(ends)
    declared = facts.get("duration")
    if declared and last < declared - max(TRUNCATION_SLACK, 0.02 * declared):
        raise VideoRefused("damaged_video", damaged)
    decoded = facts.get("video") or {}
    if not decoded.get("frames") or (audio is not None and audio.get("packets") and not decoded.get("audio_frames")):
        raise VideoRefused("damaged_video", damaged)

    seconds = max(last, declared or 0)
    if seconds > settings.max_seconds + 0.5:  # half a second for muxers' rounding
        raise VideoRefused("video_too_long", f"The video lasts {seconds:.0f} seconds; at most "
                           f"{settings.max_seconds} seconds are accepted.")
    if seconds <= 0:
        raise VideoRefused("damaged_video", damaged)
    return Facts(kind, video["codec"], audio["codec"] if audio else None, width, height,
                 max(1, round(seconds * 1000)))


# ---- the use cases ---------------------------------------------------------------------------

def accept_upload(expert_id, temp_path, settings, probe_argv=None):
    """Check an uploaded file (at ``temp_path``, in the video directory) and make it the expert's
    video, replacing any old one. The temporary file is gone afterwards, whatever happens; a
    refusal (VideoRefused) stores nothing. Returns the row."""
    poster_temp = settings.path(f".poster-{secrets.token_urlsafe(NAME_BYTES)}.part")
    video_name = poster_name = None
    try:
        size = os.path.getsize(temp_path)
        if size == 0:
            raise VideoRefused("no_file", "Choose a video file to upload.")
        if size > settings.max_bytes:
            raise VideoRefused("too_large", f"The video is {human_bytes(size)}; at most "
                               f"{human_bytes(settings.max_bytes)} is accepted.")
        kind = sniff(temp_path)
        # What is there now: replaced only if still there when the new one is stored.
        current = db.session.execute(sa.select(ExpertVideo.file_name, ExpertVideo.poster_name)
                                     .filter_by(expert_id=expert_id)).first()
        db.session.rollback()  # no transaction held open while the probe runs
        checked = check(run_probe(temp_path, kind, poster_temp, settings.probe_timeout, probe_argv), kind, settings)
        if not os.path.exists(poster_temp):
            raise VideoRefused("damaged_video", "No picture could be taken from this video; try exporting it again.")

        video_name, poster_name = new_name(kind), new_name("jpg")
        os.replace(temp_path, settings.path(video_name))
        os.replace(poster_temp, settings.path(poster_name))
        _store_row(expert_id, current, checked, size, video_name, poster_name)
    except BaseException:
        db.session.rollback()
        remove(temp_path, poster_temp, video_name and settings.path(video_name),
               poster_name and settings.path(poster_name))
        raise
    if current is not None:
        remove(settings.path(current.file_name), settings.path(current.poster_name))
    return db.session.scalar(sa.select(ExpertVideo).filter_by(expert_id=expert_id))


def _store_row(expert_id, current, facts, size, video_name, poster_name):
    """Insert the expert's row, or replace ``current`` (compare-and-set on its file name, so that
    of two uploads at once only one wins: the other is a VideoConflict); commit."""
    values = dict(file_name=video_name, poster_name=poster_name, container=facts.container,
                  video_codec=facts.video_codec, audio_codec=facts.audio_codec, width=facts.width,
                  height=facts.height, duration_ms=facts.duration_ms, bytes=size, created_at=utcnow())
    try:
        if current is None:
            db.session.execute(sa.insert(ExpertVideo).values(expert_id=expert_id, **values))
        else:
            done = db.session.execute(sa.update(ExpertVideo).where(
                ExpertVideo.expert_id == expert_id, ExpertVideo.file_name == current.file_name).values(**values))
            if done.rowcount != 1:
                raise VideoConflict()
        db.session.commit()
    except sa.exc.IntegrityError:
        db.session.rollback()
        raise VideoConflict()
    db.session.expire_all()


def remove_video(expert_id, settings):
    """Delete the expert's video and poster; False when there was none."""
    current = db.session.execute(sa.select(ExpertVideo.file_name, ExpertVideo.poster_name)
                                 .filter_by(expert_id=expert_id)).first()
    if current is None:
        return False
    done = db.session.execute(sa.delete(ExpertVideo).where(
        ExpertVideo.expert_id == expert_id, ExpertVideo.file_name == current.file_name))
    db.session.commit()
    if done.rowcount:
        remove(settings.path(current.file_name), settings.path(current.poster_name))
    return bool(done.rowcount)


def video_url(name):
    return f"/media/videos/{name}"


def poster_url(name):
    return f"/media/posters/{name}"


def video_row(expert_id):
    return db.session.scalar(sa.select(ExpertVideo).filter_by(expert_id=expert_id))


def video_of(expert_id):
    """The expert's video for a page: url, poster_url, mime, width, height, duration_ms; or None."""
    return describe(video_row(expert_id))


def describe(row):
    """What a page needs of a video row (None for None)."""
    if row is None:
        return None
    return {"url": video_url(row.file_name), "poster_url": poster_url(row.poster_name), "mime": row.mime,
            "width": row.width, "height": row.height, "duration_ms": row.duration_ms}


def stored_file(kind, name, settings):
    """(path, mimetype) of a stored video or poster that a row names, or None."""
    column = ExpertVideo.file_name if kind == "video" else ExpertVideo.poster_name
    row = db.session.scalar(sa.select(ExpertVideo).where(column == name))
    if row is None:
        return None
    return settings.path(name), (row.mime if kind == "video" else "image/jpeg")
