"""Chromium through Playwright for the browser tests and the board benchmark.

The system Chromium (``apt-get install chromium``) is driven with Playwright's own client; its
browser download cannot run here. Every page gets a fresh profile, nothing but the app's own
origin is reachable (any other request is aborted and recorded, so "works offline" is checked),
and console errors and CSP violations are collected.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]  # tests/support/ -> the checkout
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = os.environ.get("DEPOT_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1400, "height": 1000}
PHONE = {"width": 375, "height": 740}


class BrowserUnavailable(RuntimeError):
    """Chromium, Playwright or axe-core is missing: `make test` installs them (see the Makefile)."""


def check_browser() -> None:
    problems = []
    try:
        import playwright  # noqa: F401
    except ImportError:
        problems.append(
            "the playwright package is not installed (pip install -r requirements.lock)"
        )
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        problems.append(f"no Chromium at {CHROMIUM} (apt-get install -y chromium chromium-driver)")
    if not AXE.exists():
        problems.append(f"no axe-core at {AXE} (cd web && npm ci)")
    if problems:
        raise BrowserUnavailable("; ".join(problems) + ". `make test` installs them.")


@dataclass
class PageLog:
    origin: str
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)


@contextmanager
def chromium() -> Iterator[object]:
    """A Playwright instance with Chromium's path and flags; yields ``new_context(**options)``."""
    check_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        profiles: list[tempfile.TemporaryDirectory] = []
        contexts = []

        def new_context(origin: str, viewport: dict | None = None, **options):
            profile = tempfile.TemporaryDirectory(prefix="depot-chromium-")
            profiles.append(profile)
            context = pw.chromium.launch_persistent_context(
                profile.name,
                executable_path=CHROMIUM,
                headless=True,
                args=FLAGS,
                viewport=viewport or DESKTOP,
                **options,
            )
            contexts.append(context)
            log = PageLog(origin)

            def guard(route):
                url = route.request.url
                if url.startswith((origin, "data:")):
                    return route.continue_()
                log.blocked.append(url)
                return route.abort()

            context.route("**/*", guard)
            context.log = log
            return context

        try:
            yield new_context
        finally:
            for context in contexts:
                context.close()
            for profile in profiles:
                profile.cleanup()


def watch(page, log: PageLog) -> None:
    """Record the page's console errors and CSP violations into ``log``."""
    page.on("console", lambda m: log.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: log.console_errors.append(str(e)))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => "
        "console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
    )


def open_page(context, path: str):
    page = context.new_page()
    watch(page, context.log)
    page.goto(context.log.origin + path)
    return page


def axe_violations(page, impacts=("serious", "critical")) -> list[dict]:
    """Run axe-core (from web/node_modules, injected here, never served by the app)."""
    # Evaluated through the DevTools protocol: the page's CSP (rightly) refuses an injected tag.
    page.evaluate(AXE.read_text() + "\n;0")
    result = page.evaluate("async () => JSON.stringify(await axe.run(document))")
    violations = json.loads(result)["violations"]
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"][:5]],
        }
        for v in violations
        if v["impact"] in impacts
    ]


def host_of(url: str) -> str:
    return urlsplit(url).netloc
