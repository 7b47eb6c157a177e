"""The server's own origin and the URLs it hands out."""
from urllib.parse import urlsplit

from flask import current_app, request


def own_origin():
    base = current_app.config.get("PUBLIC_URL") or request.host_url
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}"


def ws_url(call_id):
    origin = own_origin()
    scheme = "wss" if origin.startswith("https:") else "ws"
    return f"{scheme}://{urlsplit(origin).netloc}/ws/calls/{call_id}"
