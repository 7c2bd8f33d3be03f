"""The screens (SPEC section 5): the dispatcher's board at ``/`` and ``/board``, the driver's view
at ``/driver``, and their static files at ``/static``.

The server renders each page's shell with Jinja2 (every control with its label, the day, the
mode); the page's script then reads the JSON API that integrations use (so the board's tiles are
the API's counts, not a second computation), sending the tab's bearer token, and follows
``GET /events``. Nothing is fetched from outside the app: the one library (Chart.js, for the plot)
is vendored from npm into ``depot/web/static/vendor`` by ``web/vendor.mjs``.

Every page answer carries a Content Security Policy without inline scripts or styles, so markup
in a package id or a note can only ever be text.
"""

from __future__ import annotations

from datetime import date as Date
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from depot.core.models import Day, Identifier

WEB = Path(__file__).resolve().parent.parent / "web"
STATIC = WEB / "static"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}

templates = Jinja2Templates(directory=WEB / "templates")  # autoescape on for .html
router = APIRouter(include_in_schema=False)

DayQuery = Annotated[Day | None, Query(description="the day shown, YYYY-MM-DD (default: today)")]


def _today(request: Request) -> str:
    service = getattr(request.app.state, "service", None)
    return service.today() if service is not None else Date.today().isoformat()


def _page(request: Request, template: str, day: Day | None, **context) -> HTMLResponse:
    context = {"day": day.isoformat() if day else _today(request), **context}
    return templates.TemplateResponse(request, template, context, headers=PAGE_HEADERS)


@router.get("/", response_class=HTMLResponse)
@router.get("/board", response_class=HTMLResponse)
def board(request: Request, day: DayQuery = None) -> HTMLResponse:
    """The dispatcher's board."""
    return _page(request, "board.html", day)


@router.get("/driver", response_class=HTMLResponse)
def driver(
    request: Request, day: DayQuery = None, driver_id: Identifier | None = None
) -> HTMLResponse:
    """The driver's view; in open mode ``driver_id`` picks the driver."""
    return _page(request, "driver.html", day, driver_id=driver_id or "")


def install(app: FastAPI) -> None:
    """The pages and their static files (``create_app`` calls this once)."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
