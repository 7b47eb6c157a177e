"""Custom domains on the web: the expert's page /dashboard/domains, Caddy's ask endpoint
/_internal/tls-ask, and routing by Host (``HostRouter``) so that a verified domain serves its
expert's page, button and widget, and nothing else.

callme's own host: PUBLIC_URL's host when it is set (plus the loopback names, for health checks
and Caddy's ask request), and any other Host then gets a plain 404 unless it is a verified
domain. With PUBLIC_URL unset, any Host that is not a custom domain is callme's own.
"""
import ipaddress

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for

from ..experts import domains
from ..extensions import db
from ..security import check_csrf, csrf_token, login_required, secure
from .limits import limit

bp = Blueprint("domains", __name__)

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
# What a verified domain serves besides its expert's page at "/": the button, the widget and
# what they call. "{h}" is the domain's expert's handle: nobody else's is served there.
DOMAIN_PATHS = ("/embed.js", "/w/{h}", "/api/v1/experts/{h}/status", "/api/v1/calls", "/api/v1/payments/orders",
                "/api/v1/currencies", "/{h}")
DOMAIN_PREFIXES = ("/widget/", "/ws/calls/", "/paypal/", "/receipts/", "/media/", "/static/", "/api/v1/calls/")


def init_app(app):
    """Register the pages, route by Host, and re-check domains in the background."""
    app.register_blueprint(bp)
    app.wsgi_app = HostRouter(app, app.wsgi_app)
    rechecker = app.extensions["callme.domains"] = domains.Rechecker(app)
    if app.config["START_CLOCK"] and app.config["DOMAIN_RECHECK"] > 0:
        @app.before_request
        def _start_domain_checks():
            rechecker.ensure_started()


# ---- routing by Host ---------------------------------------------------------------------------

def route(path, handle):
    """The path a verified domain of ``handle`` serves for ``path``, or None (404)."""
    if path == "/":
        return f"/{handle}"
    if path in {p.format(h=handle) for p in DOMAIN_PATHS} or path.startswith(DOMAIN_PREFIXES):
        return path
    return None


def _not_found(start_response):
    body = b"Not Found\n"
    start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                                     ("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store")])
    return [body]


class HostRouter:
    """WSGI middleware: requests to a verified domain reach only its expert's routes (``/`` is
    rewritten to ``/<handle>``, served by whoever serves that page); a known but unverified
    domain, or an unknown Host when PUBLIC_URL is set, get a plain 404."""

    def __init__(self, app, wsgi_app):
        self.app, self.wsgi_app = app, wsgi_app

    def __call__(self, environ, start_response):
        config = self.app.config
        host = domains.host_of(environ.get("HTTP_HOST") or environ.get("SERVER_NAME"))
        own = domains.own_host(config)
        if host == own or host in LOCAL_HOSTS:
            return self.wsgi_app(environ, start_response)
        with self.app.app_context():
            site = domains.site_for(host, ttl=float(config["DOMAIN_HOST_CACHE"]))
        if site is None:
            if own:
                return _not_found(start_response)
            return self.wsgi_app(environ, start_response)
        state, _, handle = site
        path = route(environ.get("PATH_INFO") or "/", handle) if state == "verified" else None
        if path is None:
            return _not_found(start_response)
        environ["PATH_INFO"] = path
        environ["callme.custom_domain"] = host
        return self.wsgi_app(environ, start_response)


# ---- Caddy's ask endpoint ------------------------------------------------------------------------

def _ask_allowed():
    """Only the configured client addresses (loopback by default) and never a proxied request
    (Caddy's ask request carries no X-Forwarded-For; a visitor's request through Caddy does)."""
    if request.headers.get("X-Forwarded-For") or request.headers.get("Forwarded"):
        return False
    try:
        client = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    for allowed in current_app.config["TLS_ASK_FROM"]:
        try:
            if client in ipaddress.ip_network(allowed, strict=False):
                return True
        except ValueError:
            continue
    return False


# "_internal": a first path segment no handle can take (handles are [a-z0-9-]), so no expert's /<handle>.
@bp.get("/_internal/tls-ask")
def tls_ask():
    """200 when ``?domain=`` is a verified domain (Caddy then issues its certificate), else 404.
    One indexed lookup, no DNS."""
    if not _ask_allowed():
        abort(404)
    try:
        name = domains.normalise(request.args.get("domain", ""), current_app.config)
    except domains.DomainError:
        abort(404)
    if not domains.is_verified(name):
        abort(404)
    return current_app.response_class("ok\n", mimetype="text/plain", headers={"Cache-Control": "no-store"})


# ---- the expert's page -------------------------------------------------------------------------

def _page(expert, status=200, error=None, notice=None, entered=""):
    rows = [(d, domains.records(d, current_app.config, request.host)) for d in domains.domains_of(expert.id)]
    return secure(current_app.make_response((render_template(
        "domains.html", expert=expert, csrf=csrf_token(), rows=rows, error=error, notice=notice, entered=entered,
        most=domains.MAX_PER_EXPERT), status)))


NOTICES = {"added": "Added. Create the two records below at your DNS host, then check.",
           "removed": "Removed: callme no longer answers on that domain.",
           "checked": "Checked."}


@bp.get("/dashboard/domains")
@login_required
def domains_page(expert):
    return _page(expert, notice=NOTICES.get(request.args.get("done", "")))


@bp.post("/dashboard/domains")
@login_required
def add(expert):
    check_csrf()
    entered = request.form.get("domain", "")
    try:
        domains.add_domain(expert, entered, current_app.config)
    except domains.DomainError as e:
        db.session.rollback()
        return _page(expert, e.status, e.message, entered=entered[:domains.MAX_INPUT])
    return redirect(url_for("domains.domains_page", done="added"), 303)


@bp.post("/dashboard/domains/<domain_id>/check")
@login_required
def check_now(expert, domain_id):
    check_csrf()
    domain = domains.domain_of(expert, domain_id)
    limit("RATE_LIMIT_DOMAIN_CHECK", f"domain-check:{expert.id}")
    domains.check(domain, current_app.config)
    return redirect(url_for("domains.domains_page", done="checked") + f"#domain-{domain.id}", 303)


@bp.post("/dashboard/domains/<domain_id>/delete")
@login_required
def remove(expert, domain_id):
    check_csrf()
    domains.remove_domain(expert, domain_id)
    return redirect(url_for("domains.domains_page", done="removed"), 303)
