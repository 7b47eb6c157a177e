"""Rate limits as views meet them: one call, 429 with Retry-After when over."""
from flask import current_app

from ..errors import ApiError


def limit(rule_name, key):
    wait = current_app.extensions["callme.limiter"].hit(key, current_app.config[rule_name])
    if wait:
        raise ApiError(429, "rate_limited", f"Too many attempts; try again in {wait} seconds.",
                       headers={"Retry-After": str(wait)})
