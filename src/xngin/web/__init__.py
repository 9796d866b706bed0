"""The web UI: server-rendered pages over the same services as the JSON API.

Mounted at ``/ui`` by :func:`xngin.api.app.create_app` (see :func:`create_web_app`). Pages are
Jinja2 templates in ``templates/``; charts are SVG drawn by :mod:`xngin.web.charts`; the only
script is ``static/design.js`` (the live audience count), and every page works without it.
"""

from xngin.web.app import create_web_app

__all__ = ["create_web_app"]
