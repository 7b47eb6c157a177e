"""An expert's profile: the fields a visitor reads, the terms of a call, and the photo.

The rules for every editable value are said here once, as plain functions: ``from_form`` turns
the editor's form into values, ``check`` refuses bad ones field by field (``ProfileInvalid``
carries every refusal at once, so nothing is stored unless all are good), ``save_profile``
stores them. The price (amount or currency) may change at most once per ``PRICE_CHANGE_EVERY``;
a call keeps the terms it was created with (``Call.price_minor``), so a change never touches a
call already made. ``process_photo`` makes a small, metadata-free JPEG of an upload with Pillow.
"""
import io
import os
import re
import secrets
import warnings
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, available_timezones

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

# models first: it imports every room's tables (this module among them), and errors needs it whole.
from ..models import MAX_PRICE, utcnow  # noqa: I100
from ..errors import CallmeError  # noqa: I100
from ..extensions import db
from ..money.currency import PAYPAL_CURRENCIES, exponent, paypal_payable

# ---- limits ------------------------------------------------------------------------------------

HEADLINE_MAX = 120
BIO_MAX = 4000
QUALIFICATIONS_MAX, QUALIFICATION_MAX = 10, 200
LANGUAGES_MAX = 10
SERVICES_MAX, SERVICE_NAME_MAX, SERVICE_LINE_MAX = 6, 80, 160
ORIGINS_MAX, ORIGIN_MAX = 20, 255
FREE_SECONDS_MAX = 3600
CAP_MINUTES_MAX = 480
# A paid call's PayPal hold is cap x price minor units; amounts are 32-bit integers in the database.
HOLD_MAX = 2**31 - 1
PRICE_CHANGE_EVERY = timedelta(hours=24)
DEFAULT_TIMEZONE = "UTC"
CURRENCIES = tuple(sorted(PAYPAL_CURRENCIES))  # a price nobody can pay is no price

PHOTO_MAX_BYTES = 5 * 1024 * 1024
PHOTO_MAX_SIDE = 512               # the stored photo fits in PHOTO_MAX_SIDE x PHOTO_MAX_SIDE
PHOTO_MAX_PIXELS = 40_000_000      # an upload's width x height, checked before decoding
PHOTO_MAX_DIMENSION = 10_000
PHOTO_FORMATS = ("JPEG", "PNG", "WEBP")
PHOTO_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{22}\.jpg$")

# Languages as BCP 47 tags (language, optional script, optional region: "en", "pt-BR",
# "zh-Hant"); the common ones may be typed by their English name too.
LANGUAGE_TAG_RE = re.compile(r"^([A-Za-z]{2,3})(?:-([A-Za-z]{4}))?(?:-([A-Za-z]{2}|[0-9]{3}))?$")
LANGUAGE_NAMES = {
    "ar": "Arabic", "bn": "Bengali", "bg": "Bulgarian", "ca": "Catalan", "cs": "Czech", "da": "Danish",
    "de": "German", "el": "Greek", "en": "English", "es": "Spanish", "et": "Estonian", "fa": "Persian",
    "fi": "Finnish", "fr": "French", "ga": "Irish", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian",
    "hu": "Hungarian", "id": "Indonesian", "is": "Icelandic", "it": "Italian", "ja": "Japanese",
    "ko": "Korean", "lt": "Lithuanian", "lv": "Latvian", "ms": "Malay", "nl": "Dutch", "no": "Norwegian",
    "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sk": "Slovak", "sl": "Slovenian",
    "sr": "Serbian", "sv": "Swedish", "sw": "Swahili", "ta": "Tamil", "th": "Thai", "tl": "Tagalog",
    "tr": "Turkish", "uk": "Ukrainian", "ur": "Urdu", "vi": "Vietnamese", "zh": "Chinese",
}
_LANGUAGE_BY_NAME = {name.lower(): code for code, name in LANGUAGE_NAMES.items()}

HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
IPV4_RE = re.compile(r"^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$")
LOCAL_HOSTS = ("localhost", "127.0.0.1")
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# ---- the table ---------------------------------------------------------------------------------

class ExpertProfile(db.Model):
    """What the public page says about an expert (one row per expert, made on the first save)."""

    __tablename__ = "expert_profiles"

    expert_id: Mapped[int] = mapped_column(sa.ForeignKey("experts.id", ondelete="CASCADE"), primary_key=True)
    headline: Mapped[str] = mapped_column(sa.String(HEADLINE_MAX), default="")
    bio: Mapped[str] = mapped_column(sa.Text, default="")
    qualifications: Mapped[list] = mapped_column(sa.JSON, default=list)
    languages: Mapped[list] = mapped_column(sa.JSON, default=list)       # BCP 47 tags
    services: Mapped[list] = mapped_column(sa.JSON, default=list)        # [{"name", "line"}]
    timezone: Mapped[str] = mapped_column(sa.String(64), default=DEFAULT_TIMEZONE)  # IANA name
    photo: Mapped[str | None] = mapped_column(sa.String(64))             # a file in MEDIA_DIR/photos
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow, onupdate=utcnow)


def profile_of(expert_id):
    """The expert's profile row, or an unsaved empty one (never None)."""
    return db.session.get(ExpertProfile, expert_id) or ExpertProfile(
        expert_id=expert_id, headline="", bio="", qualifications=[], languages=[], services=[],
        timezone=DEFAULT_TIMEZONE, photo=None)


# ---- refusals ----------------------------------------------------------------------------------

class ProfileInvalid(CallmeError):
    """Some values were refused: ``fields`` maps each form field to what is wrong with it."""

    def __init__(self, fields):
        super().__init__("invalid_profile", "Some values were not accepted; nothing was changed.", status=400,
                         fields=fields)


class PhotoInvalid(CallmeError):
    """An upload that is not a photo callme takes."""

    def __init__(self, message, status=400, code="invalid_photo"):
        super().__init__(code, message, status=status, fields={"photo": message})


# ---- the form ----------------------------------------------------------------------------------

def _lines(text):
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def from_form(form):
    """The editor's form (a dict or MultiDict of strings) as the values ``check`` takes.

    Qualifications and origins: one a line; languages: comma or line separated; services: the
    pairs ``service_name_<i>`` / ``service_line_<i>``; the price: a decimal in the currency's
    units ("1.50"), kept as text here so ``check`` can say what is wrong with it.
    """
    get = lambda name: form.get(name) or ""  # noqa: E731
    services = []
    for i in range(SERVICES_MAX + 1):  # one more than allowed, so that too many is noticed
        name, line = get(f"service_name_{i}").strip(), get(f"service_line_{i}").strip()
        if name or line:
            services.append({"name": name, "line": line})
    return {
        "headline": get("headline").strip(),
        "bio": get("bio").replace("\r\n", "\n").strip(),
        "qualifications": _lines(get("qualifications")),
        "languages": [part.strip() for part in re.split(r"[,\n]", get("languages")) if part.strip()],
        "services": services,
        "timezone": get("timezone").strip(),
        "price": get("price").strip(),
        "currency": get("currency").strip().upper(),
        "free_seconds": get("free_seconds").strip(),
        "cap_minutes": get("cap_minutes").strip(),
        "allowed_origins": [part for part in re.split(r"[\s,]+", get("allowed_origins")) if part],
    }


def form_values(expert, profile):
    """The editor's form filled with what is stored."""
    return {
        "headline": profile.headline, "bio": profile.bio,
        "qualifications": "\n".join(profile.qualifications or []),
        "languages": ", ".join(profile.languages or []),
        "services": list(profile.services or []),
        "timezone": profile.timezone or DEFAULT_TIMEZONE,
        "price": price_text(expert.price_minor, expert.currency), "currency": expert.currency,
        "free_seconds": str(expert.free_seconds), "cap_minutes": str(expert.cap_minutes),
        "allowed_origins": "\n".join(expert.allowed_origins or []),
    }


def echo_form(values):
    """Values as ``from_form`` made them, back in the form's shape (to show them again on a refusal)."""
    return {**values, "qualifications": "\n".join(values["qualifications"]),
            "languages": ", ".join(values["languages"]), "allowed_origins": "\n".join(values["allowed_origins"])}


# ---- each value's rule -------------------------------------------------------------------------

def _text(value, limit, what, multiline=False):
    if not isinstance(value, str):
        raise ValueError(f"{what} must be text.")
    if CONTROL_RE.search(value) or (not multiline and "\n" in value):
        raise ValueError(f"{what} contains characters that cannot be shown.")
    if len(value) > limit:
        raise ValueError(f"{what} can have at most {limit} characters (this has {len(value)}).")
    return value


def check_language(value):
    """A BCP 47 tag ("pt-br" -> "pt-BR") or a known English name ("German" -> "de")."""
    text = value.strip()
    if text.lower() in _LANGUAGE_BY_NAME:
        return _LANGUAGE_BY_NAME[text.lower()]
    match = LANGUAGE_TAG_RE.match(text.replace("_", "-"))
    if not match:
        raise ValueError(f"{value[:40]!r} is not a language: write a code such as en, de, pt-BR or a name such as German.")
    language, script, region = match.groups()
    return "-".join(part for part in (language.lower(), script and script.title(), region and region.upper()) if part)


def language_name(tag):
    """A tag for people: "pt-BR" -> "Portuguese (BR)"; an unknown language stays its tag."""
    language, _, rest = tag.partition("-")
    name = LANGUAGE_NAMES.get(language)
    if name is None:
        return tag
    return f"{name} ({rest})" if rest else name


def check_timezone(value):
    """An IANA time zone name known to zoneinfo ("Europe/Berlin")."""
    if not isinstance(value, str) or not value or value not in _timezones():
        raise ValueError("Choose a time zone by its IANA name, e.g. Europe/Berlin or America/New_York.")
    ZoneInfo(value)
    return value


_zones = None


def _timezones():
    global _zones
    if _zones is None:
        _zones = frozenset(available_timezones()) | {"UTC"}
    return _zones


def timezone_names():
    return sorted(_timezones())


def check_currency(value):
    if value not in PAYPAL_CURRENCIES:
        raise ValueError(f"Choose one of the currencies PayPal takes: {', '.join(CURRENCIES)}.")
    return value


def parse_price(text, currency):
    """A price typed in the currency's units ("1.50" USD) as minor units (150); exact or refused."""
    digits = exponent(currency)
    if not re.fullmatch(r"\d{1,12}(?:\.\d+)?", text or ""):
        raise ValueError("Write the price per minute as a number, e.g. 1.50 (0 for free calls).")
    try:
        minor = Decimal(text).scaleb(digits)
    except InvalidOperation:  # pragma: no cover - the pattern lets only numbers through
        raise ValueError("Write the price per minute as a number.") from None
    if minor != minor.to_integral_value():
        raise ValueError(f"{currency} has {digits} decimal places; {text} is not a whole number of them."
                         if digits else f"{currency} has no decimal places: write a whole number.")
    return int(minor)


def price_text(minor, currency):
    """Minor units as the form shows them: (150, "USD") -> "1.50"."""
    from ..money.currency import decimal_string

    return decimal_string(minor, currency)


def check_price(minor, currency):
    if type(minor) is not int or minor < 0:
        raise ValueError("The price cannot be negative.")
    if minor > MAX_PRICE:
        raise ValueError(f"The price can be at most {price_text(MAX_PRICE, currency)} {currency} a minute.")
    if not paypal_payable(minor, currency):
        raise ValueError(f"PayPal takes whole {currency} only: choose a whole amount.")
    return minor


def _whole(text, low, high, what):
    if isinstance(text, int) and not isinstance(text, bool):
        number = text
    elif isinstance(text, str) and re.fullmatch(r"\d{1,9}", text):
        number = int(text)
    else:
        raise ValueError(f"{what} must be a whole number.")
    if not low <= number <= high:
        raise ValueError(f"{what} must be between {low} and {high}.")
    return number


def check_origin(value):
    """An embedding site's origin, normalised: scheme://host[:port], lowercase, no default port.

    https only, except http for localhost and 127.0.0.1 (a developer's own machine).
    """
    text = (value or "").strip()
    if len(text) > ORIGIN_MAX:
        raise ValueError(f"{text[:40]!r}… is too long for an origin.")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r} is not an origin such as https://example.com.") from None
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in ("http", "https") or not host or parts.username or parts.password or \
            parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc or \
            text.endswith(("?", "#")):
        raise ValueError(f"{text!r} is not an origin: write scheme://host[:port], e.g. https://example.com, "
                         "without a path.")
    if not (HOSTNAME_RE.match(host) or IPV4_RE.match(host)):
        raise ValueError(f"{text!r} does not name a valid host.")
    if scheme == "http" and host not in LOCAL_HOSTS:
        raise ValueError(f"{text!r}: sites must use https (http only for localhost and 127.0.0.1).")
    if port in (None, {"http": 80, "https": 443}[scheme]):
        return f"{scheme}://{host}"
    if port == 0:
        raise ValueError(f"{text!r} has no valid port.")
    return f"{scheme}://{host}:{port}"


# ---- the price-change rule ---------------------------------------------------------------------

def next_price_change(expert, now=None):
    """When the expert's price may change next (naive UTC), or None when it may change now."""
    now = now or utcnow()
    if expert.price_changed_at is None:
        return None
    at = expert.price_changed_at + PRICE_CHANGE_EVERY
    return at if at > now else None


def local_time(at, timezone):
    """A naive-UTC moment as people in ``timezone`` read it: "2026-12-02 17:45 CET"."""
    from datetime import timezone as tz

    local = at.replace(tzinfo=tz.utc).astimezone(ZoneInfo(timezone or DEFAULT_TIMEZONE))
    return local.strftime("%Y-%m-%d %H:%M %Z")


# ---- all of them together ----------------------------------------------------------------------

def check(expert, values, now=None):
    """Every value checked; the clean ones returned, or ``ProfileInvalid`` naming each bad field."""
    now = now or utcnow()
    errors, clean = {}, {}

    def rule(field, fn, *args):
        try:
            clean[field] = fn(*args)
        except ValueError as e:
            errors[field] = str(e)

    rule("headline", _text, values.get("headline", ""), HEADLINE_MAX, "The headline")
    rule("bio", _text, values.get("bio", ""), BIO_MAX, "The bio", True)
    rule("qualifications", _list, values.get("qualifications", []), QUALIFICATIONS_MAX, "qualifications",
         lambda q: _text(q, QUALIFICATION_MAX, "A qualification"))
    rule("languages", _list, values.get("languages", []), LANGUAGES_MAX, "languages", check_language)
    rule("services", _list, values.get("services", []), SERVICES_MAX, "services", _service)
    rule("timezone", check_timezone, values.get("timezone") or DEFAULT_TIMEZONE)
    rule("currency", check_currency, values.get("currency") or expert.currency)
    currency = clean.get("currency", expert.currency)
    price = values.get("price")
    if price is None or price == "":
        errors["price"] = "Write the price per minute (0 for free calls)."
    elif isinstance(price, str):
        rule("price_minor", parse_price, price, currency)
    else:
        clean["price_minor"] = price
    if "price_minor" in clean:
        rule("price_minor", check_price, clean["price_minor"], currency)
    if "price_minor" in errors:
        errors["price"] = errors.pop("price_minor")
    rule("free_seconds", _whole, values.get("free_seconds", ""), 0, FREE_SECONDS_MAX, "The free seconds")
    rule("cap_minutes", _whole, values.get("cap_minutes", ""), 1, CAP_MINUTES_MAX, "The cap")
    rule("allowed_origins", _list, values.get("allowed_origins", []), ORIGINS_MAX, "sites", check_origin)
    if "allowed_origins" in clean:
        clean["allowed_origins"] = list(dict.fromkeys(clean["allowed_origins"]))

    if "price_minor" in clean and "currency" in clean and price_changes(expert, clean):
        next_at = next_price_change(expert, now)
        if next_at is not None:
            errors["price"] = ("The price changed less than 24 hours ago; it can change again on "
                               f"{local_time(next_at, clean.get('timezone'))}.")
    if "price_minor" in clean and "cap_minutes" in clean and clean["price_minor"] * clean["cap_minutes"] > HOLD_MAX:
        errors["cap_minutes"] = "The longest call (cap × price) is more than PayPal hold callme can ask for; " \
                                "lower the cap or the price."
    if errors:
        raise ProfileInvalid(errors)
    return clean


def _list(items, most, what, each):
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"The {what} must be a list.")
    if len(items) > most:
        raise ValueError(f"At most {most} {what} (there are {len(items)}).")
    checked = [each(item) for item in items]
    return list(dict.fromkeys(checked)) if all(isinstance(c, str) for c in checked) else checked


def _service(item):
    if not isinstance(item, dict):
        raise ValueError("A service is a name and one line.")
    name = _text(item.get("name", ""), SERVICE_NAME_MAX, "A service's name")
    line = _text(item.get("line", ""), SERVICE_LINE_MAX, f"The line of {name or 'a service'!r}")
    if not name:
        raise ValueError("Each service needs a name (the line alone is not enough).")
    return {"name": name, "line": line}


def price_changes(expert, clean):
    return clean["price_minor"] != expert.price_minor or clean["currency"] != expert.currency


def save_profile(expert, values, now=None):
    """Check every value and store them all, or refuse (``ProfileInvalid``) and store none.

    Returns the profile. A new price or currency stamps ``price_changed_at``.
    """
    now = now or utcnow()
    clean = check(expert, values, now)
    profile = db.session.get(ExpertProfile, expert.id)
    if profile is None:
        profile = ExpertProfile(expert_id=expert.id)
        db.session.add(profile)
    for field in ("headline", "bio", "qualifications", "languages", "services", "timezone"):
        setattr(profile, field, clean[field])
    if price_changes(expert, clean):
        expert.price_minor, expert.currency, expert.price_changed_at = clean["price_minor"], clean["currency"], now
    expert.free_seconds, expert.cap_minutes = clean["free_seconds"], clean["cap_minutes"]
    expert.allowed_origins = clean["allowed_origins"]
    db.session.commit()
    return profile


# ---- what the public page says -----------------------------------------------------------------

def free_time_text(free_seconds):
    """"First minute free", "First 2 minutes free", "First 30 seconds free", or ""."""
    if free_seconds <= 0:
        return ""
    if free_seconds == 60:
        return "First minute free"
    if free_seconds % 60 == 0:
        return f"First {free_seconds // 60} minutes free"
    if free_seconds > 60:
        return f"First {free_seconds // 60} min {free_seconds % 60} s free"
    return f"First {free_seconds} second{'s' if free_seconds != 1 else ''} free"


# ---- the photo ---------------------------------------------------------------------------------

def process_photo(data):
    """An upload (bytes) as the photo callme stores: a JPEG of at most PHOTO_MAX_SIDE a side, turned
    as its EXIF orientation says, with no metadata at all. Raises ``PhotoInvalid`` for anything that
    is not a JPEG, PNG or WebP image within the limits, judged by its content alone."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if len(data) > PHOTO_MAX_BYTES:
        raise PhotoInvalid(f"The photo can be at most {PHOTO_MAX_BYTES // (1024 * 1024)} MB.", 413, "too_large")
    if not data:
        raise PhotoInvalid("Choose a photo to upload.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=PHOTO_FORMATS)
            width, height = image.size  # from the header: nothing decoded yet
            if width * height > PHOTO_MAX_PIXELS or max(width, height) > PHOTO_MAX_DIMENSION:
                raise PhotoInvalid(f"The photo is {width}×{height} pixels; at most {PHOTO_MAX_DIMENSION} a side "
                                   f"and {PHOTO_MAX_PIXELS // 1_000_000} megapixels.")
            image.load()
    except PhotoInvalid:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoInvalid(f"The photo has far too many pixels; at most {PHOTO_MAX_DIMENSION} a side "
                           f"and {PHOTO_MAX_PIXELS // 1_000_000} megapixels.") from None
    except UnidentifiedImageError:
        raise PhotoInvalid("This is not a JPEG, PNG or WebP photo.", 415, "unsupported_photo") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError):
        raise PhotoInvalid("The photo could not be read: the file is damaged or incomplete.") from None

    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        image = background
    elif image.mode != "RGB":
        image = image.convert("RGB")
    image.thumbnail((PHOTO_MAX_SIDE, PHOTO_MAX_SIDE), Image.Resampling.LANCZOS)
    clean = Image.new("RGB", image.size)  # a fresh image: nothing of the upload's info comes along
    clean.paste(image)
    out = io.BytesIO()
    clean.save(out, "JPEG", quality=85, optimize=True, progressive=True)
    return out.getvalue()


def photos_dir(media_dir):
    return os.path.join(media_dir, "photos")


def store_photo(media_dir, jpeg):
    """Write a processed photo under a new random name; return the name."""
    folder = photos_dir(media_dir)
    os.makedirs(folder, exist_ok=True)
    name = secrets.token_urlsafe(16) + ".jpg"
    tmp = os.path.join(folder, f".{name}.tmp")
    with open(tmp, "wb") as f:
        f.write(jpeg)
    os.replace(tmp, os.path.join(folder, name))
    return name


def remove_photo_file(media_dir, name):
    if name and PHOTO_NAME_RE.match(name):
        try:
            os.remove(os.path.join(photos_dir(media_dir), name))
        except FileNotFoundError:
            pass


def replace_photo(expert, media_dir, data):
    """Process and store an upload as the expert's photo; the old file is removed. Nothing is stored
    (no file, no row) when the upload is refused."""
    jpeg = process_photo(data)
    name = store_photo(media_dir, jpeg)
    try:
        profile = db.session.get(ExpertProfile, expert.id)
        if profile is None:
            profile = profile_of(expert.id)
            db.session.add(profile)
        old, profile.photo = profile.photo, name
        db.session.commit()
    except BaseException:
        db.session.rollback()
        remove_photo_file(media_dir, name)
        raise
    if old and old != name:
        remove_photo_file(media_dir, old)
    return name


def delete_photo(expert, media_dir):
    """Remove the expert's photo (row and file)."""
    profile = db.session.get(ExpertProfile, expert.id)
    if profile is None or not profile.photo:
        return
    old, profile.photo = profile.photo, None
    db.session.commit()
    remove_photo_file(media_dir, old)
