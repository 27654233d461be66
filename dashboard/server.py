"""WSGI entry for gunicorn: `gunicorn dashboard.server:server`."""

from dashboard.app import create_app

app = create_app()
server = app.server
