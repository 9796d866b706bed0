"""ASGI entry point for `xngin serve` and uvicorn: settings come from the environment."""

from xngin.api.app import create_app

app = create_app()
