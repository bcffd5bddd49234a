"""The browser UI and every file it (and GraphiQL) loads, served from this package: no CDN.

``static/vendor/<package>@<version>/`` holds third-party files copied byte for byte out of
their npm tarballs (``vendor.lock.json``, ``scripts/ui_vendor.py``); ``static/app/`` is the
app itself, plain ES modules with JSDoc types and no build step (docs/ui.md says why).

Caching: a vendored file's URL names its version and an app file's URL names a digest of all
app files, so both are served ``immutable`` for a year; the page at ``/`` that names them is
revalidated on every load, so a new release is picked up at once.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from functools import lru_cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

STATIC = Path(__file__).resolve().parent / "static"
APP = STATIC / "app"
VENDOR = STATIC / "vendor"

#: URL prefix of every served file.
ASSETS_PREFIX = "/assets"

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

#: The app page may load and connect only to this server: a stray external URL fails in the
#: browser too, not only in the tests. (uPlot and the app set styles through the CSSOM, which
#: a style-src without 'unsafe-inline' allows.)
APP_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)

#: Content types by suffix (the platform's mimetypes table varies between machines).
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".md": "text/plain; charset=utf-8",
    "": "text/plain; charset=utf-8",  # LICENSE
}

#: Only these are compressed (fonts and images already are); GraphiQL's script shrinks from
#: 3.5 MB to under 1 MB.
COMPRESSIBLE = {".js", ".css", ".html", ".json", ".svg", ".md", ""}


@lru_cache(maxsize=1)
def app_digest() -> str:
    """A digest of every app file: it changes whenever one does, and names their URLs."""
    digest = hashlib.sha256()
    for path in sorted(APP.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(APP).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def app_assets_url() -> str:
    return f"{ASSETS_PREFIX}/app/{app_digest()}"


@lru_cache(maxsize=256)
def _load(path: Path) -> tuple[bytes, bytes | None]:
    """A file's bytes and, if worth it, their gzip (once per process; the files are fixed)."""
    body = path.read_bytes()
    packed = gzip.compress(body, 6, mtime=0) if path.suffix in COMPRESSIBLE else None
    return body, packed if packed is not None and len(packed) < len(body) else None


def _resolve(relative: str) -> Path | None:
    """The package file that ``/assets/<relative>`` names, or None (nothing outside STATIC)."""
    parts = relative.split("/")
    if parts[0] == "app" and len(parts) > 2:
        if parts[1] != app_digest():
            return None  # an older release's URL: reload the page for the current one
        base, rest = APP, parts[2:]
    elif parts[0] == "vendor" and len(parts) > 1:
        base, rest = VENDOR, parts[1:]
    else:
        return None
    if any(part in {"", ".", ".."} or "\\" in part for part in rest):
        return None
    path = base.joinpath(*rest)
    return path if path.is_file() and path.resolve().is_relative_to(base) else None


async def asset(request: Request) -> Response:
    path = _resolve(request.path_params["path"])
    if path is None:
        return Response("Not found.", status_code=404, media_type="text/plain")
    body, packed = _load(path)
    headers = {
        "Cache-Control": IMMUTABLE,
        "X-Content-Type-Options": "nosniff",
        "Vary": "Accept-Encoding",
    }
    content_type = CONTENT_TYPES.get(path.suffix) or (
        mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    )
    if packed is not None and "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        body = packed
    return Response(body, headers=headers, media_type=content_type)


@lru_cache(maxsize=1)
def app_page() -> str:
    return (APP / "index.html").read_text().replace("{{ASSETS}}", app_assets_url())


async def index(request: Request) -> Response:
    return HTMLResponse(
        app_page(),
        headers={
            "Cache-Control": REVALIDATE,
            "Content-Security-Policy": APP_CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


def ui_routes() -> list[Route]:
    """``/`` (the app) and ``/assets/...`` (its files, GraphiQL's and the vendored ones)."""
    return [
        Route("/", index, methods=["GET"]),
        Route(ASSETS_PREFIX + "/{path:path}", asset, methods=["GET"]),
    ]
