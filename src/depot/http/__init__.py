"""The HTTP edge: the FastAPI app, its middleware, auth, limits and idempotency."""
