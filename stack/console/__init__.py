"""The web console: static pages served by ``polystack run`` at ``/``.

The console is plain HTML, CSS and ES modules shipped in this package (no build
step), plus uPlot for charts, vendored under ``static/vendor``. It holds no data:
the page and its files load without an API key, and every call it makes for data
goes to the API routes with the key the user typed, which the API's auth checks.
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import FileResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "install_console", "is_console_path"]

STATIC_DIR = Path(__file__).parent / "static"
PREFIX = "/console/"


def is_console_path(path: str) -> bool:
    """The console's page and static files (no data behind them)."""
    return path == "/" or path.startswith(PREFIX)


async def _index(request) -> FileResponse:
    # revalidated on every load so an upgraded server's console is picked up at once
    return FileResponse(STATIC_DIR / "index.html", headers={"cache-control": "no-cache"})


def install_console(app) -> None:
    """Serve the console's page at ``/`` and its files under ``/console/``."""
    app.router.routes.append(Route("/", _index, methods=["GET", "HEAD"], include_in_schema=False))
    app.router.routes.append(Mount(PREFIX.rstrip("/"), StaticFiles(directory=STATIC_DIR), name="console"))
