"""The web portal: index.html at / and its static files under /portal/, public (no key)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from functions.api.deps import base_url
from functions.domain.errors import NotFound

router = APIRouter(tags=["portal"], include_in_schema=False)

WEB_ROOT = Path(__file__).resolve().parents[2] / "web"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The portal changes with the app: browsers revalidate instead of running stale scripts. It
# runs only its own scripts and styles, talks only to this origin, shows images from here and
# from the signed links' origin, and is never framed.
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' blob: data: {links}; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def _web_files() -> dict[str, Path]:
    """The servable files, listed once: a request can only name one of these, never a path."""
    return {
        p.relative_to(WEB_ROOT).as_posix(): p
        for p in WEB_ROOT.rglob("*")
        if p.is_file() and p.suffix in MEDIA_TYPES
    }


FILES = _web_files()


def _serve(request: Request, name: str) -> FileResponse:
    path = FILES.get(name)
    if path is None:
        raise NotFound("NotFound", f"The portal has no file '{name}'.")
    links = base_url(request)  # with its trailing slash: a source with a path is a prefix
    headers = {**HEADERS, "Content-Security-Policy": CSP.format(links=links)}
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=headers)


@router.get("/")
def portal_index(request: Request) -> FileResponse:
    return _serve(request, "index.html")


@router.get("/portal/{name:path}")
def portal_file(request: Request, name: str) -> FileResponse:
    return _serve(request, "portal/" + name)
