"""Authentication and authorization: signed bearer tokens with two roles (docs/security.md).

Tokens are JWTs signed with HS256 through PyJWT. Verification pins the algorithm list to
``HS256`` (so ``none`` and every asymmetric/"confusion" trick is refused) and requires ``exp``,
``iat``, ``sub`` and ``role``. Secrets come from ``DEPOT_AUTH_SECRET`` (current: mints and
verifies) and ``DEPOT_AUTH_PREVIOUS_SECRETS`` (comma-separated: verify only, for rotation).

Authentication happens in a pure ASGI middleware (``AuthMiddleware``), deny by default: every
path except the open ones (health, readiness, metrics, docs) needs a valid token, including
routes added later, and an unauthenticated client is refused before its body is read. Routes
then read the verified ``Principal`` through the ``current_principal`` / ``require_dispatcher``
dependencies and check objects (a driver's own packages) with the helpers at the bottom.

Nothing here logs a token or a secret.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import jwt
import structlog
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from depot.config import Settings
from depot.errors import NotFound
from depot.http.errors import error_response, send_json_error

log = logging.getLogger("depot.http.auth")

ALGORITHM = "HS256"
ISSUER = "depot"
Role = Literal["dispatcher", "driver"]
ROLES: tuple[str, ...] = ("dispatcher", "driver")
MIN_SECRET_BYTES = 32
MAX_TTL_S = 30 * 24 * 3600
MAX_TOKEN_CHARS = 4096
OPEN_PATHS = frozenset(
    {
        "/health",
        "/ready",
        "/metrics",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
        "/",
        "/board",
        "/driver",
    }
)  # the screens' shells: no data, they ask for a token
OPEN_PREFIXES = ("/static/",)  # the screens' scripts and styles
_DRIVER_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")  # models.Identifier


class AuthConfigError(RuntimeError):
    """The service must not start: e.g. no secret in the test or prod environment."""


@dataclass(frozen=True)
class Principal:
    role: Role
    driver_id: str | None = None
    subject: str = ""
    token_id: str | None = None
    open_mode: bool = False

    @property
    def is_dispatcher(self) -> bool:
        return self.role == "dispatcher"

    @property
    def actor(self) -> str:
        """Who acts, for logs, events and idempotency scopes: ``open`` (no authentication),
        ``dispatcher:<sub>`` or ``driver:<driver_id>``; never anything of the token itself."""
        if self.open_mode:
            return "open"
        return f"{self.role}:{self.driver_id if self.role == 'driver' else self.subject}"

    def owns(self, driver_id: str | None) -> bool:
        return self.is_dispatcher or (driver_id is not None and driver_id == self.driver_id)


OPEN_PRINCIPAL = Principal(role="dispatcher", subject="anonymous", open_mode=True)


class AuthError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# --- secrets --------------------------------------------------------------------------------------


def _plain(value: Any) -> str | None:
    if value is None:
        return None
    value = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return value or None


def secrets_from(settings: Settings) -> list[str]:
    """[current, *previous]; empty when authentication is off (open mode)."""
    current = _plain(settings.auth_secret)
    if not current:
        return []
    previous = _plain(settings.auth_previous_secrets) or ""
    return [
        current,
        *[s.strip() for s in previous.split(",") if s.strip() and s.strip() != current],
    ]


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
_SET_A_SECRET = (
    "set DEPOT_AUTH_SECRET (at least 32 random bytes, e.g. "
    "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
)


def is_loopback(host: str | None) -> bool:
    return (host or "").strip().lower() in LOOPBACK_HOSTS


def local_endpoint(endpoint: str | None) -> bool:
    """The storage is an emulator on this machine (the embedded one included), not AWS."""
    if not endpoint:
        return False
    from urllib.parse import urlsplit

    try:
        return is_loopback(urlsplit(endpoint).hostname)
    except ValueError:
        return False


def open_mode_refusal(settings: Settings, host: str | None = None) -> str | None:
    """Why the API must not start open (no secret), or None. Open mode is allowed by itself only
    against a local emulator and, when the bind address ``host`` is known, on loopback; anywhere
    else only with DEPOT_ALLOW_OPEN_MODE=true. Never in the test or prod environment."""
    if secrets_from(settings):
        return None
    env = settings.env
    if env in ("test", "prod"):
        return (
            f"DEPOT_AUTH_SECRET is not set and DEPOT_ENV={env}: refusing to start an "
            f"unauthenticated API outside dev; {_SET_A_SECRET}"
        )
    if settings.allow_open_mode:
        return None
    endpoint = settings.aws_endpoint_url
    where = []
    if not local_endpoint(endpoint):
        where.append(f"against {'AWS' if not endpoint else endpoint} (not a local emulator)")
    if host is not None and not is_loopback(host):
        where.append(f"on {host} (not a loopback address)")
    if not where:
        return None
    return (
        f"DEPOT_AUTH_SECRET is not set: refusing to serve an open API (every caller a dispatcher) "
        f"{' and '.join(where)}; {_SET_A_SECRET}, or set DEPOT_ALLOW_OPEN_MODE=true if an open API "
        "is really meant (docs/security.md)"
    )


def check_configuration(settings: Settings, host: str | None = None) -> list[str]:
    """Refuse to start an open API except where ``open_mode_refusal`` allows it; warn loudly
    about open mode when it is allowed."""
    secrets = secrets_from(settings)
    env = settings.env
    if not secrets:
        refusal = open_mode_refusal(settings, host)
        if refusal:
            raise AuthConfigError(refusal)
        log.warning(
            "!!! DEPOT_AUTH_SECRET is not set: the API is OPEN, every caller acts as a dispatcher. "
            "This is the embedded dev default only; never expose it. See docs/security.md. !!!"
        )
        return []
    for s in secrets:
        if len(s.encode()) < MIN_SECRET_BYTES:
            if env == "prod":
                raise AuthConfigError(
                    f"an auth secret is shorter than {MIN_SECRET_BYTES} bytes: refusing to start"
                )
            log.warning(
                "an auth secret is shorter than %d bytes; use a long random one", MIN_SECRET_BYTES
            )
    return secrets


# --- tokens ---------------------------------------------------------------------------------------

_TTL = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int:
    """'8h', '30m', '2d', '900s' or '900' -> seconds (1 s .. 30 days)."""
    match = _TTL.match(text or "")
    if not match:
        raise ValueError(f"invalid TTL {text!r}: use e.g. 900, 30m, 8h or 2d")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if not 0 < seconds <= MAX_TTL_S:
        raise ValueError(f"TTL must be between 1 second and {MAX_TTL_S // 86400} days")
    return seconds


def mint_token(
    secret: str,
    role: str,
    driver_id: str | None = None,
    ttl_s: int = 8 * 3600,
    now: float | None = None,
) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if role == "driver" and not (driver_id and _DRIVER_ID.match(driver_id)):
        raise ValueError("a driver token needs --driver-id (letters, digits, _ . : -, at most 128)")
    if role == "dispatcher" and driver_id:
        raise ValueError("a dispatcher token takes no driver id")
    if not secret:
        raise ValueError("no secret: set DEPOT_AUTH_SECRET")
    now = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": driver_id if role == "driver" else "dispatcher",
        "role": role,
        "iat": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    if role == "driver":
        claims["driver_id"] = driver_id
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(token: str, secrets: list[str]) -> Principal:
    """A verified principal, or AuthError(401). Tries the current secret, then the previous ones."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise AuthError(401, "invalid_token", "the bearer token is malformed")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise AuthError(401, "invalid_token", "the bearer token is malformed") from None
    if header.get("alg") != ALGORITHM:
        raise AuthError(401, "invalid_token", f"the token must be signed with {ALGORITHM}")
    claims = None
    for secret in secrets:
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                leeway=5,
                options={"require": ["exp", "iat", "sub", "role", "iss"]},
            )
            break
        except jwt.ExpiredSignatureError:
            raise AuthError(401, "token_expired", "the bearer token has expired") from None
        except jwt.InvalidSignatureError:
            continue
        except jwt.InvalidTokenError as exc:
            raise AuthError(
                401, "invalid_token", f"the bearer token is invalid: {type(exc).__name__}"
            ) from None
    if claims is None:
        raise AuthError(401, "invalid_token", "the bearer token's signature does not verify")
    _check_lifetime(claims)
    role, driver_id = claims.get("role"), claims.get("driver_id")
    if role == "dispatcher" and driver_id is None:
        return Principal(role="dispatcher", subject=str(claims["sub"]), token_id=claims.get("jti"))
    if role == "driver" and isinstance(driver_id, str) and _DRIVER_ID.match(driver_id):
        return Principal(
            role="driver", driver_id=driver_id, subject=driver_id, token_id=claims.get("jti")
        )
    raise AuthError(401, "invalid_token", "the bearer token's role claims are invalid")


def _check_lifetime(claims: dict[str, Any]) -> None:
    """The policy's maximum lifetime (``MAX_TTL_S``, what ``depot token`` mints at most) holds on
    verify too: a token signed for longer (a leaked secret, a hand-made token) is refused."""
    try:
        issued, expires = float(claims["iat"]), float(claims["exp"])
    except (TypeError, ValueError):
        raise AuthError(
            401, "invalid_token", "the bearer token's iat and exp must be numbers"
        ) from None
    if expires - issued > MAX_TTL_S or expires - time.time() > MAX_TTL_S + 5:
        raise AuthError(
            401,
            "invalid_token",
            f"the bearer token lives longer than the {MAX_TTL_S // 86400}-day maximum",
        )


# --- the middleware -------------------------------------------------------------------------------


def bearer_from_scope(scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None


class AuthMiddleware:
    """Pure ASGI: verifies the bearer token of every non-open request before the app sees it."""

    def __init__(self, app, secrets: list[str]):
        self.app, self.secrets = app, secrets

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = scope.setdefault("state", {})
        if not self.secrets:
            state["principal"] = OPEN_PRINCIPAL
            structlog.contextvars.bind_contextvars(actor=OPEN_PRINCIPAL.actor)
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES) or scope.get("method") == "OPTIONS":
            return await self.app(scope, receive, send)
        token = bearer_from_scope(scope)
        try:
            if token is None:
                raise AuthError(
                    401,
                    "unauthorized",
                    "a bearer token is required (Authorization: Bearer <token>)",
                )
            principal = verify_token(token, self.secrets)
        except AuthError as exc:
            challenge = (
                'Bearer realm="depot"'
                if exc.code == "unauthorized"
                else (
                    'Bearer realm="depot", error="invalid_token", '
                    f'error_description="{exc.message}"'
                )
            )
            return await send_json_error(
                send, exc.status, exc.code, exc.message, headers={"WWW-Authenticate": challenge}
            )
        state["principal"] = principal
        state["rate_key"] = f"{principal.subject}:{principal.token_id}"
        structlog.contextvars.bind_contextvars(actor=principal.actor)
        await self.app(scope, receive, send)


# --- dependencies ---------------------------------------------------------------------------------

_bearer = HTTPBearer(
    auto_error=False, description="`depot token --role dispatcher|driver` mints one"
)


def current_principal(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None
) -> Principal:
    principal = getattr(request.state, "principal", None)
    if principal is None:  # the middleware is not installed: fail closed
        raise AuthError(401, "unauthorized", "a bearer token is required")
    return principal


def require_dispatcher(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_dispatcher:
        raise AuthError(403, "forbidden", "this operation needs a dispatcher token")
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]
DispatcherDep = Annotated[Principal, Depends(require_dispatcher)]


# --- object-level checks (another driver's object answers exactly like a missing one) -------------


def check_update(principal: Principal, driver_id: str, package_id: str) -> None:
    """POST /update: a driver may only move its own deliveries."""
    if not principal.owns(driver_id):
        # Same message and details as Service.update_status for a missing (driver, package).
        raise NotFound(
            f"no assignment of package {package_id!r} to driver {driver_id!r}",
            {"driver_id": driver_id, "package_id": package_id},
        )


def check_driver_read(principal: Principal, service, driver_id: str, day: str) -> None:
    """GET /drivers/{id}/assignments: a driver reads only its own."""
    if not principal.owns(driver_id):
        service.require_day(day)  # a missing day answers as it would for anyone
        # Same message and details as Service.driver_assignments for a driver not in the day.
        raise NotFound(
            f"driver {driver_id!r} is not in the manifest of {day}", {"driver_id": driver_id}
        )


def visible_package(principal: Principal, result: dict[str, Any], package_id: str, day: str | None):
    """GET /packages/{id}: a driver sees only the packages it holds."""
    if not principal.owns(result.get("driver_id")):
        # Same message and details as Service.package for a missing package.
        raise NotFound(
            f"no package {package_id!r}" + (f" on {day}" if day else ""), {"package_id": package_id}
        )
    return result


# --- installation ---------------------------------------------------------------------------------


def middleware(settings) -> list:
    """Security's middleware, outermost first: auth, then the rate limit, then the body limit. So
    an unauthenticated or over-limit request is refused before anything reads its body or
    replays a stored response (``create_app`` states the whole order)."""
    from starlette.middleware import Middleware

    from depot.http.limits import BodyLimitMiddleware, RateLimitMiddleware

    secrets = check_configuration(settings)
    return [
        Middleware(AuthMiddleware, secrets=secrets),
        Middleware(RateLimitMiddleware, per_minute=settings.rate_limit_per_minute),
        Middleware(
            BodyLimitMiddleware,
            default_limit=settings.max_body_bytes,
            limits={("POST", "/manifests"): settings.max_manifest_bytes},
        ),
    ]


def install_handler(app) -> None:
    @app.exception_handler(AuthError)
    async def auth_error(_: Request, exc: AuthError):
        headers = {"WWW-Authenticate": 'Bearer realm="depot"'} if exc.status == 401 else None
        return error_response(exc.status, exc.code, exc.message, headers=headers)


def mint_cli(role: str, driver_id: str | None, ttl: str) -> str:
    """``depot token``: a token signed with the current DEPOT_AUTH_SECRET (ValueError explains
    refusals)."""
    from depot.config import Settings

    secrets = secrets_from(Settings())
    if not secrets:
        raise ValueError("DEPOT_AUTH_SECRET is not set: there is nothing to sign tokens with")
    return mint_token(secrets[0], role, driver_id, parse_ttl(ttl))
