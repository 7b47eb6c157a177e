"""The expert's intro video: the upload page, and serving videos and posters with HTTP Range."""
import re

from flask import Blueprint, abort, current_app, redirect, render_template, request, send_file, url_for
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

from ..errors import ApiError
from ..experts import media
from ..security import check_csrf, csrf_token, login_required, secure
from .limits import body_time, limit, max_body

bp = Blueprint("media", __name__)

VIDEO_NAME = re.compile(r"^[A-Za-z0-9_-]{16,64}\.(?:mp4|webm)$")
POSTER_NAME = re.compile(r"^[A-Za-z0-9_-]{16,64}\.jpg$")
# Names are random and never reused: a year, immutable.
FOREVER = "public, max-age=31536000, immutable"


def settings():
    return media.Settings.of(current_app)


def _page(expert, status=200, error=None, saved=None):
    row = media.video_row(expert.id)
    response = current_app.make_response((render_template(
        "video_edit.html", expert=expert, csrf=csrf_token(), video=media.describe(row), row=row, error=error, saved=saved,
        limits=settings().describe(), human_bytes=media.human_bytes), status))
    return secure(response)


@bp.get("/dashboard/video")
@login_required
def video_page(expert):
    """The expert's intro video: what is there, upload a new one, delete it."""
    return _page(expert, saved=request.args.get("saved"))


@bp.post("/dashboard/video")
@login_required
@max_body(media.body_limit)
@body_time(lambda config: config["VIDEO_BODY_TIMEOUT"])
def upload(expert):
    """Receive a video (multipart field ``video``), streamed to a temporary file in the video
    directory; checked by content; stored, or refused with the reason and nothing kept."""
    store = settings()
    temps = []
    # An upload's files live at most its body time plus the probe's: older ones were abandoned.
    media.sweep(store, 2 * current_app.config["VIDEO_BODY_TIMEOUT"] + 3600)

    def stream_factory(total_content_length, content_type, filename, content_length=None):
        f = media.open_temp(store)
        temps.append(f)
        return f

    try:
        try:
            limit("RATE_LIMIT_VIDEO", f"video:{expert.id}")
            parser = FormDataParser(stream_factory, max_form_memory_size=64 * 1024,
                                    max_content_length=request.max_content_length, max_form_parts=16)
            _, form, files = parser.parse(request.stream, request.mimetype, request.content_length,
                                          request.mimetype_params)
        except RequestEntityTooLarge:
            raise media.VideoRefused("too_large", f"The video is larger than {media.human_bytes(store.max_bytes)}, "
                                     "the most accepted.")
        # As werkzeug itself keeps a parsed form: check_csrf reads request.form.
        request.__dict__["form"], request.__dict__["files"] = form, files
        check_csrf()
        sent = files.get("video")
        if sent is None or sent.stream not in temps:
            raise media.VideoRefused("no_file", "Choose a video file to upload.")
        sent.stream.flush()
        for f in temps:
            f.close()
        media.accept_upload(expert.id, sent.stream.name, store)
    except media.VideoRefused as e:
        return _page(expert, e.status, error=e)
    except ApiError as e:  # rate limited: the page says when to try again
        response = _page(expert, e.status, error=e)
        response.headers.update(e.headers)
        return response
    finally:
        for f in temps:
            f.close()
            media.remove(f.name)
    return redirect(url_for("media.video_page", saved="1"))


@bp.post("/dashboard/video/delete")
@login_required
def delete(expert):
    """Delete the expert's video and its poster."""
    check_csrf()
    media.remove_video(expert.id, settings())
    return redirect(url_for("media.video_page", saved="deleted"))


def _serve(kind, name, pattern):
    if not pattern.match(name):
        abort(404)
    store = settings()
    found = media.stored_file(kind, name, store)
    if found is None:
        abort(404, "No such file.")
    path, mimetype = found
    try:
        response = send_file(path, mimetype=mimetype, conditional=True, etag=True, max_age=31536000)
    except FileNotFoundError:
        abort(404, "No such file.")
    response.headers["Cache-Control"] = FOREVER
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Accept-Ranges"] = "bytes"
    return response


@bp.get("/media/videos/<name>")
def video_file(name):
    """A stored video, with HTTP Range (206, 416) so browsers can seek."""
    return _serve("video", name, VIDEO_NAME)


@bp.get("/media/posters/<name>")
def poster_file(name):
    """A stored poster (JPEG)."""
    return _serve("poster", name, POSTER_NAME)
