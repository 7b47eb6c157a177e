"""ICE servers for a call: STUN as configured, TURN with coturn's shared-secret credentials."""
import base64
import hashlib
import hmac


def turn_credentials(secret, name, now, ttl):
    """Return (username, credential) as coturn's ``use-auth-secret`` expects them."""
    username = f"{int(now) + int(ttl)}:{name}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(config, name, now):
    """The RTCIceServer list for one participant; empty unless configured."""
    servers = []
    if config.get("STUN_URLS"):
        servers.append({"urls": list(config["STUN_URLS"])})
    if config.get("TURN_URLS") and config.get("TURN_SECRET"):
        username, credential = turn_credentials(config["TURN_SECRET"], name, now, config["TURN_TTL"])
        servers.append({"urls": list(config["TURN_URLS"]), "username": username, "credential": credential})
    return servers
