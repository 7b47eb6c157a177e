"""The mail outbox (``callme.notify.outbox``) over SMTP (``callme.notify.mail``), through a real
SMTP server on loopback: queued in the caller's transaction, sent once, retried with backoff while
the server refuses, never lost, never sent twice; and the local mailbox when no server is set."""
import threading
from datetime import timedelta

import pytest

from callme.extensions import db
from callme.models import utcnow
from callme.notify import mail
from callme.notify.outbox import OutboxMail, _claim, queue, send_due
from callme.web.signup import mailbox_url

from .mailsink import body, running_mail_server


@pytest.fixture
def smtp():
    """A real SMTP server on loopback (tests/mailsink.py)."""
    yield from running_mail_server()


@pytest.fixture
def mail_app(make_app, smtp, tmp_path):
    """An app sending through the test's SMTP server, inline after each commit, on a database file
    (the sender's passes use connections of their own)."""
    return make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/mail.sqlite", MAIL_SEND_ASYNC=False,
                    MAIL_RETRY_BASE=30, MAIL_RETRY_MAX=3600, **smtp.config())


def rows():
    db.session.expire_all()
    return db.session.scalars(db.select(OutboxMail).order_by(OutboxMail.id)).all()


def test_a_queued_mail_is_sent_after_the_commit_with_its_headers(mail_app, smtp):
    row = queue("ann@example.com", "Hello Ann", "Plain words.\nhttp://localhost/x", html="<p>Plain words.</p>")
    assert smtp.messages == []  # nothing leaves before the commit
    db.session.commit()
    (sender, rcpts, message), = smtp.messages
    assert rcpts == ["ann@example.com"] and sender == "no-reply@callme.test"
    assert message["Subject"] == "Hello Ann"
    assert message["From"] == "callme <no-reply@callme.test>"
    assert message["Message-ID"] == row.message_id and message["Message-ID"].endswith("@callme.test>")
    assert message["Auto-Submitted"] == "auto-generated"
    assert body(message).strip() == "Plain words.\nhttp://localhost/x"
    assert message.get_body(preferencelist=("html",)).get_content().strip().replace("\r\n", "\n") == "<p>Plain words.</p>"
    (stored,) = rows()
    assert stored.state == "sent" and stored.attempts == 1 and stored.sent_at is not None
    # A second pass has nothing to send.
    assert send_due(db.engine, mail_app.config) == {}
    assert len(smtp.messages) == 1


def test_a_rolled_back_transaction_sends_nothing(mail_app, smtp):
    queue("ann@example.com", "Never", "This mail's transaction rolls back.")
    db.session.rollback()
    db.session.commit()  # a later commit of the same session does not send it either
    assert rows() == [] and smtp.messages == []


def test_the_same_key_makes_one_mail(mail_app, smtp):
    first = queue("ann@example.com", "Once", "One mail.", key="welcome:ann")
    again = queue("ann@example.com", "Once", "One mail.", key="welcome:ann")
    db.session.commit()
    assert first is again and len(rows()) == 1 and len(smtp.messages) == 1


@pytest.mark.parametrize("to, subject", [
    ("ann@example.com\nBcc: all@example.com", "Hi"),
    ("ann@example.com", "Hi\r\nBcc: all@example.com"),
    ("", "Hi"),
    ("ann@example.com", ""),
    ("a" * 250 + "@example.com", "Hi"),
])
def test_header_injection_and_empty_fields_are_refused(mail_app, to, subject):
    with pytest.raises(ValueError):
        queue(to, subject, "text")
    assert rows() == []


def test_a_refusing_server_then_recovering_gets_each_mail_once(mail_app, smtp):
    smtp.stop()  # connection refused
    queue("ann@example.com", "Patience", "Sent when the server is back.")
    db.session.commit()  # the pass after the commit fails: the mail waits
    (row,) = rows()
    assert row.state == "pending" and row.attempts == 1 and "ConnectionRefused" in row.last_error
    now = utcnow()
    assert timedelta(seconds=25) < row.next_attempt_at - now <= timedelta(seconds=30)
    # Before its backoff is over, a pass leaves it alone.
    assert send_due(db.engine, mail_app.config) == {}
    # Still down: the backoff doubles.
    assert send_due(db.engine, mail_app.config, now=now + timedelta(seconds=31)) == {row.id: "pending"}
    (row,) = rows()
    assert row.attempts == 2 and row.next_attempt_at == now + timedelta(seconds=31 + 60)
    smtp.start()
    assert send_due(db.engine, mail_app.config, now=now + timedelta(seconds=60)) == {}  # not due yet
    assert send_due(db.engine, mail_app.config, now=now + timedelta(seconds=92)) == {row.id: "sent"}
    assert send_due(db.engine, mail_app.config, now=now + timedelta(hours=9)) == {}
    (message,) = smtp.to("ann@example.com")
    assert message["Message-ID"] == row.message_id and rows()[0].last_error is None


def test_a_temporary_refusal_is_retried_and_a_permanent_one_kept_as_failed(mail_app, smtp):
    smtp.sink.answer = "451 4.3.0 try again later"
    queue("ann@example.com", "Later", "A 4xx answer: retried.")
    db.session.commit()
    (row,) = rows()
    assert row.state == "pending" and row.last_error.startswith("451")
    smtp.sink.answer = "550 5.1.1 no such mailbox"
    assert send_due(db.engine, mail_app.config, now=utcnow() + timedelta(minutes=5)) == {row.id: "failed"}
    (row,) = rows()
    assert row.state == "failed" and row.last_error.startswith("550") and smtp.messages == []
    assert send_due(db.engine, mail_app.config, now=utcnow() + timedelta(days=1)) == {}  # failed stays failed
    # Never lost: the operator sends it again once the cause is fixed.
    smtp.sink.answer = None
    result = mail_app.test_cli_runner().invoke(args=["mail", "retry"])
    assert result.exit_code == 0, result.output
    assert "1 sent" in result.output
    assert rows()[0].state == "sent" and len(smtp.to("ann@example.com")) == 1


def test_out_of_attempts_is_failed_not_dropped(make_app, smtp, tmp_path):
    app = make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/m.sqlite", MAIL_SEND_ASYNC=False,
                   MAIL_MAX_ATTEMPTS=2, **smtp.config())
    smtp.stop()
    queue("ann@example.com", "Two tries", "Then failed.")
    db.session.commit()
    (row,) = rows()
    assert send_due(db.engine, app.config, now=utcnow() + timedelta(hours=2)) == {row.id: "failed"}
    assert rows()[0].attempts == 2 and rows()[0].state == "failed"


def test_a_claimed_row_is_not_claimed_again(mail_app, smtp):
    smtp.stop()
    queue("ann@example.com", "Claim", "One worker sends it.")
    db.session.commit()
    (row,) = rows()
    later = utcnow() + timedelta(hours=1)
    with db.session.no_autoflush:
        from sqlalchemy.orm import Session

        with Session(db.engine) as one, Session(db.engine) as two:
            assert _claim(one, row.id, later) is True
            assert _claim(two, row.id, later) is False  # compare-and-set: the second worker loses


def test_racing_passes_send_each_mail_once(mail_app, smtp):
    smtp.stop()
    for n in range(12):
        queue(f"user{n}@example.com", f"Mail {n}", "Each once.")
    db.session.commit()
    smtp.start()
    later = utcnow() + timedelta(hours=1)
    engine = db.engine
    threads = [threading.Thread(target=lambda: send_due(engine, mail_app.config, now=later)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(rcpts[0] for _, rcpts, _ in smtp.messages) == sorted(f"user{n}@example.com" for n in range(12))
    assert {r.state for r in rows()} == {"sent"}


def test_a_worker_that_died_mid_send_leaves_a_row_sent_later_with_the_same_message_id(mail_app, smtp):
    smtp.stop()
    queue("ann@example.com", "Orphan", "The worker died holding it.")
    db.session.commit()
    (row,) = rows()
    now = utcnow() + timedelta(hours=1)
    from sqlalchemy.orm import Session

    with Session(db.engine) as dead:
        assert _claim(dead, row.id, now)
    smtp.start()
    assert send_due(db.engine, mail_app.config, now=now + timedelta(minutes=1)) == {}  # its claim still holds
    assert send_due(db.engine, mail_app.config, now=now + timedelta(minutes=11)) == {row.id: "sent"}
    (message,) = smtp.messages
    assert message[2]["Message-ID"] == row.message_id


def test_sent_in_the_background_after_the_commit(make_app, smtp, tmp_path):
    from .conftest import eventually

    make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/bg.sqlite", MAIL_SEND_ASYNC=True, **smtp.config())
    for n in range(3):
        queue(f"bg{n}@example.com", "Background", "Sent by a thread.")
        db.session.commit()
    eventually(lambda: len(smtp.messages) == 3, what="three mails")
    eventually(lambda: {r.state for r in rows()} == {"sent"}, what="rows marked sent")


def test_the_clock_runs_the_retry_pass(mail_app, smtp):
    smtp.stop()
    queue("ann@example.com", "Clock", "Retried by the clock.")
    db.session.commit()
    smtp.start()
    db.session.execute(db.update(OutboxMail).values(next_attempt_at=utcnow()))
    db.session.commit()
    mail_app.extensions["callme.clock"].tick()
    assert len(smtp.messages) == 1
    mail_app.extensions["callme.clock"].tick()  # within MAIL_RETRY_INTERVAL: no second pass
    assert len(smtp.messages) == 1


def test_sent_mail_is_deleted_after_the_keeping_days(mail_app, smtp):
    queue("ann@example.com", "Old", "Kept 30 days.")
    db.session.commit()
    send_due(db.engine, mail_app.config, now=utcnow() + timedelta(days=29))
    assert len(rows()) == 1
    send_due(db.engine, mail_app.config, now=utcnow() + timedelta(days=31))
    assert rows() == []


# ---- no SMTP server: the local mailbox ------------------------------------------------------------

def test_without_an_smtp_host_mail_is_kept_and_shown_in_the_mailbox(app, client):
    queue("ann@example.com", "Welcome <Ann>", "Open http://localhost/verify?t=abc to confirm.")
    db.session.commit()
    (row,) = rows()
    assert row.state == "kept"
    assert send_due(db.engine, app.config) == {}  # nothing to send, nothing lost
    r = client.get(mailbox_url(app.config, "http://localhost"))
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    assert "Welcome &lt;Ann&gt;" in page and "<Ann>" not in page
    assert 'href="http://localhost/verify?t=abc"' in page
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Referrer-Policy"] == "no-referrer"
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]


@pytest.mark.parametrize("query", ["", "?key=", "?key=wrong", "?key=" + "0" * 32])
def test_the_mailbox_needs_its_key(app, client, query):
    queue("ann@example.com", "Secret link", "http://localhost/password/reset?t=abc")
    db.session.commit()
    r = client.get("/dev/mailbox" + query)
    assert r.status_code == 404 and "Secret link" not in r.get_data(as_text=True)


def test_no_mailbox_once_an_smtp_host_is_set(make_app, smtp):
    app = make_app(**smtp.config())
    r = app.test_client().get(mailbox_url(app.config, "http://localhost"))
    assert r.status_code == 404
    assert app.test_cli_runner().invoke(args=["mail", "mailbox"]).exit_code != 0


def test_the_mailbox_can_be_switched_off(make_app):
    app = make_app(MAIL_MAILBOX=False)
    assert app.test_client().get(mailbox_url(app.config, "http://localhost")).status_code == 404


def test_the_mailbox_command_prints_the_url(app, runner):
    result = runner.invoke(args=["mail", "mailbox"])
    assert result.exit_code == 0
    assert result.output.strip().endswith("/dev/mailbox?key=" + mail.mailbox_key(app.config))


def test_pending_mail_is_kept_when_the_smtp_host_goes_away(make_app, smtp, tmp_path):
    app = make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/k.sqlite", MAIL_SEND_ASYNC=False, **smtp.config())
    smtp.stop()
    queue("ann@example.com", "Moved", "To the mailbox.")
    db.session.commit()
    app.config["MAIL_SMTP_HOST"] = None
    send_due(db.engine, app.config)
    assert rows()[0].state == "kept"


def test_a_bad_tls_setting_fails_the_mail_for_good(make_app, smtp, tmp_path):
    make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/t.sqlite", MAIL_SEND_ASYNC=False,
             **{**smtp.config(), "MAIL_SMTP_TLS": "maybe"})
    queue("ann@example.com", "TLS", "Bad setting.")
    db.session.commit()
    assert rows()[0].state == "failed" and "MAIL_SMTP_TLS" in rows()[0].last_error


# ---- TLS and AUTH ----------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_tls_and_login_to_the_smtp_server(make_app, tmp_path, mode):
    from .mailsink import TlsMailServer

    server = TlsMailServer(str(tmp_path), mode).start()
    try:
        make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/tls.sqlite", MAIL_SEND_ASYNC=False, **server.config())
        queue("ann@example.com", "Over TLS", "Encrypted, and logged in.")
        db.session.commit()
        assert rows()[0].state == "sent", rows()[0].last_error
        assert len(server.to("ann@example.com")) == 1 and server.logins == [True]
    finally:
        server.stop()


def test_a_wrong_smtp_password_is_retried_not_dropped(make_app, tmp_path):
    from .mailsink import TlsMailServer

    server = TlsMailServer(str(tmp_path), "starttls").start()
    try:
        make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/auth.sqlite", MAIL_SEND_ASYNC=False,
                 **{**server.config(), "MAIL_SMTP_PASSWORD": "wrong"})
        queue("ann@example.com", "Auth", "The operator fixes the password.")
        db.session.commit()
        (row,) = rows()
        assert row.state == "pending" and row.last_error.startswith("535") and server.messages == []
    finally:
        server.stop()


def test_an_untrusted_certificate_is_not_sent_to(make_app, tmp_path):
    from .mailsink import TlsMailServer

    server = TlsMailServer(str(tmp_path), "starttls").start()
    try:
        make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/ca.sqlite", MAIL_SEND_ASYNC=False,
                 **{**server.config(), "MAIL_SMTP_CAFILE": None})
        queue("ann@example.com", "Untrusted", "Not sent to a server we cannot check.")
        db.session.commit()
        (row,) = rows()
        assert row.state == "pending" and "CERTIFICATE_VERIFY_FAILED" in row.last_error and server.messages == []
    finally:
        server.stop()


# ---- PostgreSQL (many workers on many hosts) ------------------------------------------------------

@pytest.fixture
def pg_mail_app(pg_url, smtp, emulator):
    from callme import create_app
    from callme.config import TestConfig

    config = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    app = create_app({**config, "SQLALCHEMY_DATABASE_URI": pg_url, "PAYPAL_BASE_URL": emulator.url,
                      "MAIL_SEND_ASYNC": False, **smtp.config()})
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.mark.postgres
def test_racing_passes_on_postgres_send_each_mail_once(pg_mail_app, smtp):
    smtp.stop()
    for n in range(8):
        queue(f"pg{n}@example.com", f"Mail {n}", "Each once, whichever worker wins.")
    db.session.commit()
    assert {r.state for r in rows()} == {"pending"}
    smtp.start()
    engine, later = db.engine, utcnow() + timedelta(hours=1)
    threads = [threading.Thread(target=lambda: send_due(engine, pg_mail_app.config, now=later)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(rcpts[0] for _, rcpts, _ in smtp.messages) == sorted(f"pg{n}@example.com" for n in range(8))
    assert {r.state for r in rows()} == {"sent"}
