"""The embedded AWS emulator: moto's server (DynamoDB and S3 over real HTTP), serialised.

Moto handles requests on several threads and does not promise that a conditional write is
atomic with respect to another thread's. Depot's guarantees rest on that atomicity, so the
emulator runs one request at a time, as a single DynamoDB partition would order them.

Moto keeps every item and object as Python objects: a 100,000-package day is millions of them.
Python's cyclic garbage collector walks all of them in each full (generation 2) collection, which
then took 1-4 s, during which no request is served (the stall behind a multi-second /update p99,
docs/performance.md). So every ``FREEZE_EVERY`` requests the emulator collects the young
generations and moves what survived into the permanent generation (``gc.freeze()``): full
collections then walk only what was allocated since. Reference counting still frees stored data
that is overwritten or deleted; only reference cycles that die after being frozen are never
reclaimed: what a request in flight holds at a freeze, measured at ~70 objects per freeze.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Callable, Iterable

READY_LINE = "depot-emulator ready on http://{host}:{port}"


FREEZE_EVERY = 100
"""Requests between two ``gc.freeze()`` (each costs a young-generation collection, ~1 ms)."""


class SerialisedApp:
    """WSGI middleware that runs one request at a time, body included; keeps the heap frozen."""

    def __init__(self, app: Callable, freeze_every: int = FREEZE_EVERY):
        self.app = app
        self.lock = threading.Lock()
        self.freeze_every = freeze_every
        self.requests = 0

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        with self.lock:
            result = self.app(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                close = getattr(result, "close", None)
                if close:
                    close()
                self.requests += 1
                if self.freeze_every and self.requests % self.freeze_every == 0:
                    gc.collect(
                        1
                    )  # young cyclic garbage is reclaimed before the survivors are frozen
                    gc.freeze()


def _set_fake_credentials() -> None:
    from depot.config import use_local_credentials

    use_local_credentials()


def make_server(host: str = "127.0.0.1", port: int = 4566):
    """A werkzeug server for moto's DynamoDB and S3, serialised by ``SerialisedApp``."""
    _set_fake_credentials()
    import logging

    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server as werkzeug_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = DomainDispatcherApplication(create_backend_app)
    return werkzeug_server(host, port, SerialisedApp(app), threaded=True)


def serve(
    host: str = "127.0.0.1", port: int = 4566, on_ready: Callable[[], None] | None = None
) -> None:
    server = make_server(host, port)
    print(READY_LINE.format(host=host, port=server.port), flush=True)
    if on_ready:
        on_ready()
    try:
        server.serve_forever()
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Depot's embedded AWS emulator (moto, serialised)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    args = parser.parse_args(argv)
    try:
        serve(args.host, args.port)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
