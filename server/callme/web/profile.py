"""The expert's profile: the editor (/dashboard/profile), the photo upload, the photos themselves
(/media/photos/<name>) and the public page at the expert's unique URL (/<handle>)."""
import os

from flask import Blueprint, abort, current_app, redirect, render_template, request, send_from_directory, url_for

from .. import reviews
from ..experts import media, profiles
from ..experts.accounts import published_expert
from ..experts.profiles import PHOTO_MAX_BYTES, PHOTO_NAME_RE, PhotoInvalid, ProfileInvalid
from ..extensions import db
from ..money.currency import decimal_string
from ..money.earnings import format_money
from ..security import check_csrf, csrf_token, login_required, secure
from ..urls import own_origin
from .limits import max_body

bp = Blueprint("profile", __name__)
# Registered apart so that /<handle> can be registered after every other blueprint.
public_bp = Blueprint("public_profile", __name__)

PHOTO_CACHE = "public, max-age=31536000, immutable"  # names are random: a new photo is a new URL
# Room for the multipart envelope and the form's other fields around the photo itself.
PHOTO_BODY_LIMIT = PHOTO_MAX_BYTES + 64 * 1024


def media_dir():
    """Where uploads live: MEDIA_DIR, or ``media`` in the instance folder."""
    return current_app.config.get("MEDIA_DIR") or os.path.join(current_app.instance_path, "media")


def photo_url(name, absolute=False):
    if not name:
        return None
    path = url_for("profile.media_photo", name=name)
    return own_origin() + path if absolute else path


# ---- the editor --------------------------------------------------------------------------------

def _editor(expert, form=None, errors=None, status=200, saved=False, photo_saved=False):
    profile = profiles.profile_of(expert.id)
    next_at = profiles.next_price_change(expert)
    tz = profile.timezone or profiles.DEFAULT_TIMEZONE
    return secure(current_app.make_response((render_template(
        "profile_edit.html", expert=expert, profile=profile, csrf=csrf_token(),
        form=form or profiles.form_values(expert, profile), errors=errors or {}, saved=saved,
        photo_saved=photo_saved, photo=photo_url(profile.photo),
        next_change=profiles.local_time(next_at, tz) if next_at else None,
        timezones=profiles.timezone_names(), currencies=profiles.CURRENCIES, limits=profiles,
        photo_mb=PHOTO_MAX_BYTES // (1024 * 1024)), status)))


@bp.route("/dashboard/profile", methods=["GET", "POST"])
@login_required
def edit(expert):
    """One form for the whole profile and the terms of a call; all stored, or none."""
    if request.method == "GET":
        return _editor(expert, saved=request.args.get("saved") == "1",
                       photo_saved=request.args.get("photo") == "1")
    check_csrf()
    values = profiles.from_form(request.form)
    try:
        profiles.save_profile(expert, values)
    except ProfileInvalid as e:
        db.session.rollback()
        return _editor(expert, profiles.echo_form(values), e.fields, 400)
    return redirect(url_for("profile.edit", saved=1), 303)


@bp.post("/dashboard/profile/photo")
@max_body(PHOTO_BODY_LIMIT)
@login_required
def upload_photo(expert):
    """A new photo (JPEG, PNG or WebP), re-encoded; the old one is removed."""
    check_csrf()
    upload = request.files.get("photo")
    data = upload.read(PHOTO_MAX_BYTES + 1) if upload is not None else b""
    try:
        profiles.replace_photo(expert, media_dir(), data)
    except PhotoInvalid as e:
        db.session.rollback()
        return _editor(expert, errors=e.fields, status=e.status)
    return redirect(url_for("profile.edit", photo=1), 303)


@bp.post("/dashboard/profile/photo/delete")
@login_required
def delete_photo(expert):
    check_csrf()
    profiles.delete_photo(expert, media_dir())
    return redirect(url_for("profile.edit"), 303)


@bp.get("/media/photos/<name>")
def media_photo(name):
    """A stored photo: cached for a year (its name changes with it), never sniffed."""
    if not PHOTO_NAME_RE.match(name):
        abort(404)
    response = send_from_directory(profiles.photos_dir(media_dir()), name, mimetype="image/jpeg")
    response.headers["Cache-Control"] = PHOTO_CACHE
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"  # link previews, custom domains
    return response


# ---- the public page ---------------------------------------------------------------------------

def price_words(expert):
    """The price as the page says it: "$1.50 a minute", "Free"."""
    if expert.price_minor == 0:
        return "Free"
    return f"{format_money(expert.price_minor, expert.currency)} a minute"


def structured_data(expert, profile, page_url, image):
    """schema.org JSON-LD: a Person and the call on offer, priced per minute."""
    person = {"@context": "https://schema.org", "@type": "Person", "name": expert.display_name, "url": page_url}
    if profile.headline:
        person["jobTitle"] = profile.headline
    if profile.bio:
        person["description"] = profile.bio
    if image:
        person["image"] = image
    if profile.languages:
        person["knowsLanguage"] = list(profile.languages)
    person["makesOffer"] = {
        "@type": "Offer", "name": f"Video call with {expert.display_name}", "url": page_url,
        "priceSpecification": {
            "@type": "UnitPriceSpecification", "price": decimal_string(expert.price_minor, expert.currency),
            "priceCurrency": expert.currency, "unitCode": "MIN", "unitText": "minute",
        },
    }
    return person


def _description(expert, profile):
    text = profile.headline or (profile.bio or "").split("\n")[0] or f"Call {expert.display_name} on callme."
    return text if len(text) <= 200 else text[:199] + "…"


@public_bp.get("/<handle>")
def profile(handle):
    """The expert's unique URL: who they are, the price, and the button."""
    expert = published_expert(handle)
    if expert is None:  # unknown, or not confirmed yet: the page is not published
        abort(404, f"There is no expert called {handle!r} here.")
    profile = profiles.profile_of(expert.id)
    origin = own_origin()
    page_url = f"{origin}/{expert.handle}"
    image = photo_url(profile.photo, absolute=True)
    context = dict(
        expert=expert, profile=profile, origin=origin, page_url=page_url, photo=photo_url(profile.photo),
        og_image=image, description=_description(expert, profile),
        status=current_app.extensions["callme.calls"].status(expert.id),
        price=price_words(expert), free=profiles.free_time_text(expert.free_seconds) if expert.price_minor else "",
        languages=[profiles.language_name(tag) for tag in profile.languages or []],
        ld=structured_data(expert, profile, page_url, image), video=media.video_of(expert.id),
        ratings=reviews.summary(expert.id, recent=current_app.config.get("RATING_RECENT", 10)),
    )
    # The live status changes: caches must ask again, but may keep the page to revalidate.
    return secure(current_app.make_response(render_template("profile.html", **context)),
                  cache="no-cache", referrer=None)
