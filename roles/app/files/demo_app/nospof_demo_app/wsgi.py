"""WSGI entry point: ``gunicorn nospof_demo_app.wsgi:application``."""

from .app import create_app

application = create_app()
