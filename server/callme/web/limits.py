"""Limits a request meets: rate limits as views meet them, the body's size, the time to send it."""
import functools
import time

from flask import current_app, request
from werkzeug.exceptions import RequestTimeout

from ..errors import RateLimited


def limit(rule_name, key):
    """Count one attempt against the configured rule; 429 with Retry-After when over."""
    wait = current_app.extensions["callme.limiter"].hit(key, current_app.config[rule_name])
    if wait:
        raise RateLimited(wait)


def max_body(size):
    """Give one view its own body limit instead of MAX_CONTENT_LENGTH (smaller, or bigger for uploads).

    Checked against Content-Length before anything is read (413), and a chunked body is read
    no further than the limit. ``size`` may be a function of the app's config (a setting).
    """
    def decorate(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            request.max_content_length = size(current_app.config) if callable(size) else size
            return view(*args, **kwargs)
        return wrapped
    return decorate


def body_time(seconds):
    """Give one view its own time to receive the body instead of BODY_TIMEOUT (uploads of many
    megabytes); counted from the request's headers, like BODY_TIMEOUT. ``seconds`` may be a
    function of the app's config."""
    def decorate(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            body = request.environ.get("wsgi.input")
            if isinstance(body, DeadlineInput):
                body.allow(seconds(current_app.config) if callable(seconds) else seconds)
            return view(*args, **kwargs)
        return wrapped
    return decorate


def read_body():
    """The request body: 413 past the limit, before reading when it has a Content-Length, and as
    soon as a chunked one goes past it (werkzeug stops at the limit silently: one byte more tells)."""
    data = request.get_data(cache=False)
    limit = request.max_content_length
    if limit is not None and request.content_length is None and len(data) >= limit:
        request.stream.read(1)  # raises 413 when the body goes on
    return data


# ---- the time to send a body -----------------------------------------------------------------

class BodyTimeout(RequestTimeout):
    description = "The request body was not sent in time."


def body_deadline(wsgi_app, seconds):
    """WSGI middleware: a request's body must arrive within ``seconds`` of its headers, or 408.

    gunicorn's gevent worker has no body timeout: a client sending a byte a second keeps a
    connection (and a greenlet) forever. Reads of ``wsgi.input`` get the time left (a gevent
    Timeout, where gevent patched the sockets); a response that leaves the body unread closes
    the connection, so the server does not drain a slow (or huge) body after answering.
    """
    def middleware(environ, start_response):
        body = DeadlineInput(environ["wsgi.input"], seconds, _content_length(environ))
        environ["wsgi.input"] = body

        def start(status, headers, exc_info=None):
            if not body.finished:
                _close_after(start_response)
            return start_response(status, headers, exc_info)
        return wsgi_app(environ, start)
    return middleware


def _content_length(environ):
    if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        return None
    try:
        return max(0, int(environ.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def _close_after(start_response):
    """Ask the server to close the connection after this response (gunicorn's Response does it)."""
    response = getattr(start_response, "__self__", None)
    force_close = getattr(response, "force_close", None)
    if callable(force_close):
        force_close()


class DeadlineInput:
    """``wsgi.input`` whose reads give up (408) once the body's time is over."""

    def __init__(self, stream, seconds, length, clock=time.monotonic):
        self.stream, self.seconds, self.clock = stream, seconds, clock
        self.left = length  # bytes still to come; None: chunked, until a read returns nothing
        self.started = clock()
        self.deadline = self.started + seconds

    def allow(self, seconds):
        """Let the body take ``seconds`` from the headers instead (see ``body_time``)."""
        self.seconds, self.deadline = seconds, self.started + seconds

    @property
    def finished(self):
        return self.left == 0

    def read(self, *args):
        return self._count(self._within(self.stream.read, *args))

    def readline(self, *args):
        return self._count(self._within(self.stream.readline, *args))

    def readlines(self, *args):
        return [self._count(line) for line in self._within(self.stream.readlines, *args)]

    def __iter__(self):
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def _count(self, data):
        if self.left is None:
            if not data:
                self.left = 0
        else:
            self.left = max(0, self.left - len(data))
        return data

    def _within(self, read, *args):
        if self.left == 0:
            return read(*args)
        remaining = self.deadline - self.clock()
        if remaining <= 0:
            raise BodyTimeout()
        timeout = _gevent_timeout(remaining)
        if timeout is None:
            return read(*args)
        with timeout:
            return read(*args)


def _gevent_timeout(seconds):
    """A gevent Timeout raising BodyTimeout, where gevent drives the sockets; else None."""
    try:
        from gevent import Timeout, monkey
    except ImportError:
        return None
    if not monkey.is_module_patched("socket"):
        return None
    return Timeout(seconds, BodyTimeout())
