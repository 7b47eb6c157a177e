"""Entry point for WSGI servers: ``gunicorn -k gevent wsgi:app``."""
from callme import create_app

app = create_app()
