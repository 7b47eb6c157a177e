"""Mail over SMTP, configured by environment; or, with no SMTP host, kept for the local mailbox.

``deliver`` sends one message and says how it went: ``Sent``, or raises ``MailError`` whose
``permanent`` flag says whether trying again could help (a 5xx answer) or not (a refused
connection, a time-out, a 4xx answer).
"""
import hashlib
import hmac
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from datetime import timezone
from urllib.parse import urlsplit

TLS_MODES = ("none", "starttls", "ssl")
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}


class MailError(Exception):
    def __init__(self, message, permanent=False):
        super().__init__(message)
        self.permanent = permanent


def embedded(config):
    """True when no SMTP server is configured: mail stays in the database (the local mailbox)."""
    return not config.get("MAIL_SMTP_HOST")


def sender_address(config):
    """MAIL_FROM, or callme <no-reply@host of PUBLIC_URL (localhost when unset)>."""
    if config.get("MAIL_FROM"):
        return config["MAIL_FROM"]
    host = urlsplit(config.get("PUBLIC_URL") or "").hostname or "localhost"
    return formataddr(("callme", f"no-reply@{host}"))


def message_id(key, config):
    """A stable Message-ID for one outbox row: a retry after a lost answer carries the same one."""
    domain = parseaddr(sender_address(config))[1].rpartition("@")[2] or "localhost"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def mailbox_key(config):
    """The key that opens the local mailbox page, derived from SECRET_KEY."""
    return hmac.new(config["SECRET_KEY"].encode(), b"callme.mailbox.v1", hashlib.sha256).hexdigest()[:32]


def build(row, config):
    """The EmailMessage of an outbox row."""
    msg = EmailMessage()
    msg["From"] = sender_address(config)
    msg["To"] = row.to_addr
    msg["Subject"] = row.subject
    msg["Message-ID"] = row.message_id
    msg["Date"] = format_datetime(row.created_at.replace(tzinfo=timezone.utc))
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(row.text)
    if row.html:
        msg.add_alternative(row.html, subtype="html")
    return msg


def _tls_context(config):
    context = ssl.create_default_context(cafile=config.get("MAIL_SMTP_CAFILE") or None)
    return context


def deliver(row, config):
    """Send one outbox row through the configured SMTP server; MailError when it was not accepted."""
    mode = (config.get("MAIL_SMTP_TLS") or "starttls").lower()
    if mode not in TLS_MODES:
        raise MailError(f"MAIL_SMTP_TLS must be one of {', '.join(TLS_MODES)}, not {mode!r}", permanent=True)
    host = config["MAIL_SMTP_HOST"]
    port = int(config.get("MAIL_SMTP_PORT") or DEFAULT_PORTS[mode])
    timeout = config.get("MAIL_SMTP_TIMEOUT", 20)
    msg = build(row, config)
    try:
        if mode == "ssl":
            smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=_tls_context(config))
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            if mode == "starttls":
                smtp.starttls(context=_tls_context(config))
            if config.get("MAIL_SMTP_USER"):
                smtp.login(config["MAIL_SMTP_USER"], config.get("MAIL_SMTP_PASSWORD") or "")
            refused = smtp.send_message(msg)
    except smtplib.SMTPRecipientsRefused as e:
        codes = [code for code, _ in e.recipients.values()]
        raise MailError(f"recipient refused: {e.recipients}", permanent=all(c >= 500 for c in codes)) from None
    except smtplib.SMTPResponseException as e:
        text = e.smtp_error.decode(errors="replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
        # 5xx is final, except for authentication (the operator may fix the password): retried.
        permanent = e.smtp_code >= 500 and not isinstance(e, smtplib.SMTPAuthenticationError)
        raise MailError(f"{e.smtp_code} {text}", permanent=permanent) from None
    except (smtplib.SMTPException, OSError, socket.timeout, ssl.SSLError) as e:
        raise MailError(f"{type(e).__name__}: {e}") from None
    if refused:
        raise MailError(f"recipient refused: {refused}", permanent=True)
