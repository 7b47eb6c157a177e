"""A real SMTP server (aiosmtpd) on loopback for the mail tests: it keeps what it received, and
can refuse connections (stopped) or answer DATA with a given code, then recover."""
import email
import email.policy
import socket
import threading


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """aiosmtpd's handler: every accepted message, parsed; ``answer`` replaces the 250 (e.g. "451 ...")."""

    def __init__(self):
        self.messages = []
        self.answer = None
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        if self.answer:
            return self.answer
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"


class MailServer:
    def __init__(self):
        self.sink = Sink()
        self.port = free_port()
        self.controller = None
        self.running = False

    def start(self):
        from aiosmtpd.controller import Controller

        if not self.running:
            self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port)
            self.controller.start()
            self.running = True
        return self

    def stop(self):
        if self.running:
            self.controller.stop()
            self.running = False

    @property
    def messages(self):
        with self.sink.lock:
            return list(self.sink.messages)

    def to(self, address):
        """The messages received for ``address``."""
        return [m for _, rcpts, m in self.messages if address in rcpts]

    def config(self):
        return {"MAIL_SMTP_HOST": "127.0.0.1", "MAIL_SMTP_PORT": self.port, "MAIL_SMTP_TLS": "none",
                "MAIL_FROM": "callme <no-reply@callme.test>", "PUBLIC_URL": "http://localhost"}


def running_mail_server():
    """For a fixture: a started MailServer, stopped afterwards."""
    server = MailServer().start()
    yield server
    server.stop()


def body(message):
    """The text part of a received message."""
    part = message.get_body(preferencelist=("plain",))
    return part.get_content().replace("\r\n", "\n")


def self_signed(directory):
    """A certificate for 127.0.0.1 and its key, written to ``directory``: (cert path, key path)."""
    import datetime
    import ipaddress
    import os

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "callme test SMTP")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(directory, "smtp.crt"), os.path.join(directory, "smtp.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


class TlsMailServer(MailServer):
    """The sink behind TLS (STARTTLS required, or implicit TLS) with AUTH for one user."""

    def __init__(self, directory, mode, user="callme", password="smtp-secret"):
        super().__init__()
        import ssl

        self.mode, self.user, self.password = mode, user, password
        self.cert, key = self_signed(directory)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(self.cert, key)
        self.logins = []

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = isinstance(auth_data, LoginPassword) and \
            (auth_data.login.decode(), auth_data.password.decode()) == (self.user, self.password)
        self.logins.append(ok)
        return AuthResult(success=True) if ok else AuthResult(success=False, handled=False, message="535 5.7.8 Wrong login")

    def start(self):
        from aiosmtpd.controller import Controller

        if not self.running:
            # PLAIN only: smtplib's AUTH LOGIN with an initial response stalls aiosmtpd 1.4.
            kwargs = {"authenticator": self.authenticate, "auth_exclude_mechanism": ["LOGIN"]}
            if self.mode == "ssl":  # implicit TLS: aiosmtpd does not count it as TLS for AUTH
                kwargs.update(ssl_context=self.context, auth_require_tls=False)
            else:
                kwargs.update(tls_context=self.context, require_starttls=True)
            self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port, **kwargs)
            self.controller.start()
            self.running = True
        return self

    def config(self):
        return {**super().config(), "MAIL_SMTP_TLS": self.mode, "MAIL_SMTP_CAFILE": self.cert,
                "MAIL_SMTP_USER": self.user, "MAIL_SMTP_PASSWORD": self.password}
