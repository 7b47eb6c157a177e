"""The profile's rules (experts/profiles.py): each field's limits, the price-change rule, the photo."""
import io
import os
from datetime import timedelta

import pytest
from PIL import Image

from callme.experts import profiles
from callme.experts.profiles import PhotoInvalid, ProfileInvalid, check, save_profile
from callme.extensions import db
from callme.models import Expert, utcnow

from .conftest import keep_alive


def good(**overrides):
    values = {
        "headline": "Immigration lawyer", "bio": "Twelve years.\n\nVisas and appeals.",
        "qualifications": ["LL.M., Leiden"], "languages": ["en", "German", "pt-br"],
        "services": [{"name": "Visa check", "line": "Is your file complete?"}],
        "timezone": "Europe/Berlin", "price": "1.50", "currency": "USD", "free_seconds": "60", "cap_minutes": "30",
        "allowed_origins": ["https://Ann.Example:443/", "http://localhost:8000"],
    }
    return {**values, **overrides}


def refused(expert, values):
    with pytest.raises(ProfileInvalid) as e:
        check(expert, values, utcnow())
    return e.value.fields


def test_good_values_are_cleaned(make_expert):
    clean = check(make_expert(), good(), utcnow())
    assert clean["languages"] == ["en", "de", "pt-BR"]
    assert clean["price_minor"] == 150 and clean["currency"] == "USD"
    assert clean["free_seconds"] == 60 and clean["cap_minutes"] == 30
    assert clean["allowed_origins"] == ["https://ann.example", "http://localhost:8000"]


@pytest.mark.parametrize("field, value", [
    ("headline", "x" * (profiles.HEADLINE_MAX + 1)),
    ("headline", "two\nlines"),
    ("headline", "bell\x07"),
    ("bio", "x" * (profiles.BIO_MAX + 1)),
    ("qualifications", ["q"] * (profiles.QUALIFICATIONS_MAX + 1)),
    ("qualifications", ["x" * (profiles.QUALIFICATION_MAX + 1)]),
    ("languages", ["klingon!"]),
    ("languages", ["english-please"]),
    ("languages", [f"l{i:02d}"[:3] for i in range(profiles.LANGUAGES_MAX + 1)]),
    ("services", [{"name": "", "line": "a line without a name"}]),
    ("services", [{"name": "x" * (profiles.SERVICE_NAME_MAX + 1), "line": ""}]),
    ("services", [{"name": "s", "line": "x" * (profiles.SERVICE_LINE_MAX + 1)}]),
    ("services", [{"name": f"s{i}", "line": ""} for i in range(profiles.SERVICES_MAX + 1)]),
    ("timezone", "Mars/Olympus"),
    ("timezone", "../../etc/passwd"),
    ("timezone", "europe/berlin"),
    ("price", "-1"),
    ("price", "1.505"),
    ("price", "1e3"),
    ("price", "abc"),
    ("price", ""),
    ("price", "100000.01"),
    ("currency", "XXX"),
    ("currency", "usd1"),
    ("free_seconds", "-5"),
    ("free_seconds", "3601"),
    ("free_seconds", "1.5"),
    ("cap_minutes", "0"),
    ("cap_minutes", "481"),
    ("allowed_origins", ["http://ann.example"]),
    ("allowed_origins", ["https://ann.example/path"]),
    ("allowed_origins", ["https://user@ann.example"]),
    ("allowed_origins", ["ftp://ann.example"]),
    ("allowed_origins", ["ann.example"]),
    ("allowed_origins", ["https://ann.example?x=1"]),
    ("allowed_origins", ["https://bad_host.example"]),
    ("allowed_origins", ["https://ann.example:99999"]),
    ("allowed_origins", [f"https://s{i}.example" for i in range(profiles.ORIGINS_MAX + 1)]),
])
def test_each_bad_value_is_refused_by_its_field(make_expert, field, value):
    fields = refused(make_expert(), good(**{field: value}))
    assert list(fields) == [field], fields
    assert fields[field]


def test_every_refusal_at_once_and_nothing_stored(make_expert):
    expert = make_expert()
    before = (expert.price_minor, expert.free_seconds, list(expert.allowed_origins))
    with pytest.raises(ProfileInvalid) as e:
        save_profile(expert, good(headline="x" * 500, price="oops", cap_minutes="0"))
    assert set(e.value.fields) == {"headline", "price", "cap_minutes"}
    assert e.value.status == 400
    db.session.rollback()
    assert db.session.get(profiles.ExpertProfile, expert.id) is None
    assert (expert.price_minor, expert.free_seconds, list(expert.allowed_origins)) == before


def test_currency_digits_decide_the_price(make_expert):
    expert = make_expert()
    assert check(expert, good(price="1500", currency="JPY"), utcnow())["price_minor"] == 1500
    assert "price" in refused(expert, good(price="15.5", currency="JPY"))
    assert "price" in refused(expert, good(price="15.5", currency="HUF"))  # PayPal: whole HUF only
    assert check(expert, good(price="15", currency="HUF"), utcnow())["price_minor"] == 1500


def test_a_hold_too_large_for_the_database_is_refused(make_expert):
    assert "cap_minutes" in refused(make_expert(), good(price="100000", cap_minutes="480"))


def test_saving_stores_the_profile_and_the_terms(make_expert):
    expert = make_expert(price=150)
    profile = save_profile(expert, good(price="2.00", free_seconds="30", cap_minutes="20"))
    db.session.expire_all()
    expert = db.session.get(Expert, expert.id)
    assert (expert.price_minor, expert.free_seconds, expert.cap_minutes) == (200, 30, 20)
    assert expert.price_changed_at is not None
    assert profile.services == [{"name": "Visa check", "line": "Is your file complete?"}]
    assert profiles.profile_of(expert.id).timezone == "Europe/Berlin"


def test_the_form_becomes_values():
    values = profiles.from_form({
        "headline": "  Lawyer ", "bio": "a\r\nb", "qualifications": "One\n\n Two \n", "languages": "en, de\nfr",
        "service_name_0": "Check", "service_line_0": "A line", "service_name_3": "Other",
        "price": "1.50", "currency": "usd", "free_seconds": "60", "cap_minutes": "30",
        "allowed_origins": "https://a.example\nhttps://b.example, https://c.example",
    })
    assert values["headline"] == "Lawyer" and values["bio"] == "a\nb"
    assert values["qualifications"] == ["One", "Two"] and values["languages"] == ["en", "de", "fr"]
    assert values["services"] == [{"name": "Check", "line": "A line"}, {"name": "Other", "line": ""}]
    assert values["currency"] == "USD"
    assert values["allowed_origins"] == ["https://a.example", "https://b.example", "https://c.example"]


def test_language_names_for_people():
    assert profiles.language_name("pt-BR") == "Portuguese (BR)"
    assert profiles.language_name("de") == "German"
    assert profiles.language_name("tlh") == "tlh"
    assert profiles.check_language("zh-hant-tw") == "zh-Hant-TW"


@pytest.mark.parametrize("seconds, text", [
    (0, ""), (1, "First 1 second free"), (30, "First 30 seconds free"), (60, "First minute free"),
    (120, "First 2 minutes free"), (90, "First 1 min 30 s free")])
def test_free_time_in_words(seconds, text):
    assert profiles.free_time_text(seconds) == text


# ---- the price changes at most once per 24 hours ----------------------------------------------

def test_the_price_changes_once_per_24_hours(make_expert):
    expert = make_expert(price=150)
    t0 = utcnow()
    assert profiles.next_price_change(expert, t0) is None
    save_profile(expert, good(price="2.00"), now=t0)
    assert expert.price_changed_at == t0
    assert profiles.next_price_change(expert, t0 + timedelta(hours=1)) == t0 + timedelta(hours=24)

    with pytest.raises(ProfileInvalid) as e:
        save_profile(expert, good(price="2.50"), now=t0 + timedelta(hours=23, minutes=59))
    db.session.rollback()
    assert "can change again on" in e.value.fields["price"]
    # Berlin is an hour ahead of UTC in winter: the message says the expert's time.
    local = profiles.local_time(t0 + timedelta(hours=24), "Europe/Berlin")
    assert local in e.value.fields["price"]
    with pytest.raises(ProfileInvalid) as e:  # a new currency is a new price too
        save_profile(expert, good(price="2.00", currency="EUR"), now=t0 + timedelta(hours=1))
    db.session.rollback()
    assert "price" in e.value.fields

    # The same price, other fields changed: not a price change, saved at once.
    save_profile(expert, good(price="2.00", headline="New headline"), now=t0 + timedelta(hours=1))
    assert expert.price_changed_at == t0
    save_profile(expert, good(price="2.50"), now=t0 + timedelta(hours=24))
    assert expert.price_minor == 250 and expert.price_changed_at == t0 + timedelta(hours=24)


def test_local_time_reads_in_the_experts_zone():
    at = utcnow().replace(year=2026, month=12, day=2, hour=16, minute=45, second=0, microsecond=0)
    assert profiles.local_time(at, "Europe/Berlin") == "2026-12-02 17:45 CET"
    assert profiles.local_time(at, "Asia/Tokyo") == "2026-12-03 01:45 JST"


def test_a_call_keeps_the_price_it_was_created_with(service, active_call, clock):
    """The price changes during a call: the call is billed at the old price."""
    call = active_call(price=150, free_seconds=0, cap_minutes=10)
    expert = db.session.get(Expert, call.expert_id)
    save_profile(expert, good(price="9.00", free_seconds="0", cap_minutes="10"))
    assert expert.price_minor == 900
    keep_alive(service, clock, call.id, 3 * 60_000)
    service.hangup(call.id, "visitor")
    ended = service.get(call.id)
    assert ended.state == "ended"
    assert ended.billed_minutes == 3
    assert ended.price_minor == 150
    assert ended.amount_minor == 3 * 150  # not 3 * 900


def test_a_call_created_after_the_change_has_the_new_price(make_expert, make_call):
    expert = make_expert(price=150)
    save_profile(expert, good(price="3.00"))
    assert make_call(expert).price_minor == 300


# ---- the photo ---------------------------------------------------------------------------------

def image_bytes(fmt="JPEG", size=(800, 600), color=(200, 30, 30), mode="RGB", **save):
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, fmt, **save)
    return out.getvalue()


def exif_with_gps():
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"          # Make
    exif[0x0112] = 6                       # Orientation: rotate 90° clockwise to view
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (52.0, 22.0, 0.0)  # GPSLatitudeRef, GPSLatitude
    gps[3], gps[4] = "E", (4.0, 53.0, 0.0)
    return exif


def test_a_photo_is_resized_reencoded_turned_and_stripped():
    data = image_bytes("JPEG", size=(1200, 600), exif=exif_with_gps().tobytes())
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)  # the upload has GPS data
    out = profiles.process_photo(data)
    image = Image.open(io.BytesIO(out))
    assert image.format == "JPEG"
    assert image.size == (256, 512)  # turned upright (orientation 6), then fitted into 512x512
    assert not image.getexif() and "exif" not in image.info
    assert b"CameraMaker" not in out and b"Exif" not in out


@pytest.mark.parametrize("fmt, mode", [("PNG", "RGBA"), ("WEBP", "RGB"), ("PNG", "P"), ("JPEG", "L")])
def test_png_and_webp_become_jpeg(fmt, mode):
    color = (10, 20, 30, 128) if mode == "RGBA" else (5 if mode in ("P", "L") else (10, 20, 30))
    out = profiles.process_photo(image_bytes(fmt, size=(300, 200), color=color, mode=mode))
    image = Image.open(io.BytesIO(out))
    assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (300, 200))


def _bomb_png(width, height):
    """A PNG whose header claims a huge size (tiny file): refused before any decoding."""
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("name, data, status", [
    ("text named .jpg", b"hello, I am not a photo\n" * 10, 415),
    ("empty", b"", 400),
    ("truncated jpeg", image_bytes("JPEG")[:600], 400),
    ("gif", image_bytes("GIF", mode="P", color=1), 415),
    ("svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>', 415),
    ("huge dimensions", _bomb_png(20_000, 20_000), 400),
    ("decompression bomb", _bomb_png(100_000, 100_000), 400),
    ("too many pixels", _bomb_png(9_000, 9_000), 400),
    ("too large", b"\xff\xd8" + b"\x00" * profiles.PHOTO_MAX_BYTES, 413),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_photos_are_refused(name, data, status):
    with pytest.raises(PhotoInvalid) as e:
        profiles.process_photo(data)
    assert e.value.status == status, e.value.message


def test_replacing_a_photo_removes_the_old_file(make_expert, tmp_path):
    expert = make_expert()
    media = str(tmp_path / "media")
    first = profiles.replace_photo(expert, media, image_bytes())
    assert profiles.PHOTO_NAME_RE.match(first)
    assert os.listdir(profiles.photos_dir(media)) == [first]
    second = profiles.replace_photo(expert, media, image_bytes("PNG"))
    assert second != first
    assert os.listdir(profiles.photos_dir(media)) == [second]
    with pytest.raises(PhotoInvalid):
        profiles.replace_photo(expert, media, b"not an image")
    assert os.listdir(profiles.photos_dir(media)) == [second]
    assert profiles.profile_of(expert.id).photo == second
    profiles.delete_photo(expert, media)
    assert os.listdir(profiles.photos_dir(media)) == []
    assert profiles.profile_of(expert.id).photo is None


def test_the_module_imports_on_its_own():
    """Imported first (a script, a worker), it brings in the models without an import cycle."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", "import callme.experts.profiles"], check=True, timeout=60)
