"""Reading a manifest body as it arrives (SPEC 2): a fast decoder for the bodies that are valid,
and the pydantic models, which name every problem, for the rest.

Why two readers: parsing the 100,000 packages of a large day with orjson and validating them with
the models takes about 0.6 s; msgspec decodes the same bytes straight into structs carrying the
same constraints in about 0.11 s (docs/performance.md). The models in ``depot.core.models`` stay the
contract. The structs below mirror them and must never accept what the models refuse
(``tests/test_manifest.py`` generates near-miss packages and checks exactly that); whatever the
fast decoder refuses is read again by the models, whose errors are what the dispatcher sees.
Drivers (a thousand, not a hundred thousand) always go through the models.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date as Date
from typing import Annotated, Any, Literal

import msgspec
import orjson
from msgspec import Meta, Struct

from depot.core.models import (
    Driver,
    InvalidManifest,
    check_unique_packages,
    gc_paused,
    package_records,
    parse_drivers,
)

BODY_FIELDS = ("day", "drivers", "packages", "release")


@dataclass(frozen=True)
class ManifestBody:
    """A validated body. ``packages`` are the fast decoder's structs or, from the authoritative
    reader, dicts already in the stored form; ``records()`` gives the stored form either way,
    which an import of a new day does not need (docs/performance.md)."""

    day: str | None
    drivers: list[Driver]
    packages: list[Any]
    release: bool = False  # a re-import may unassign what drivers' new rules reject (SPEC 4)

    def records(self) -> list[dict[str, Any]]:
        """The packages in the stored form (``models.package_records``)."""
        if not self.packages or isinstance(self.packages[0], dict):
            return self.packages
        with gc_paused():
            records = msgspec.to_builtins(self.packages)
            for record in records:
                if record["destination"] is None:
                    del record["destination"]
        return records


def parse_manifest(raw: bytes) -> ManifestBody:
    """Validate a whole body; raise ``InvalidManifest`` naming each offending field or item."""
    with gc_paused():
        return _decode_fast(raw) or _decode_checked(raw)


# --- the fast decoder: a mirror of models.Package ---------------------------------------------

# models.Identifier's length here; its pattern in one regex pass over all ids (``_valid_ids``), which
# is a third of the cost of msgspec's per-string pattern.
_Identifier = Annotated[str, Meta(min_length=1, max_length=128)]
_IDS = re.compile(r"(?:[A-Za-z0-9_.:\-]+\n)*")


class _Destination(Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    street: Annotated[str, Meta(max_length=200)] | None = None
    city: Annotated[str, Meta(max_length=100)] | None = None
    postcode: Annotated[str, Meta(max_length=20)] | None = None
    lat: Annotated[float, Meta(ge=-90, le=90)] | None = None
    lon: Annotated[float, Meta(ge=-180, le=180)] | None = None


class _Package(Struct, forbid_unknown_fields=True, gc=False):
    package_id: _Identifier
    weight_kg: Annotated[float, Meta(gt=0, le=10_000)]
    is_perishable: bool
    region: Literal["north", "east", "south", "west"]
    distance_km: Annotated[float, Meta(ge=0, le=100_000)]
    is_express: bool
    is_fragile: bool
    temperature_c: Annotated[float, Meta(ge=-100, le=100)]
    delivery_hour: Annotated[int, Meta(ge=0, le=23)]
    volume_m3: Annotated[float, Meta(gt=0, le=10_000)]
    hazmat_class: Literal[1, 2, 3, 4] | None = None
    destination: _Destination | None = None


class _Body(Struct, forbid_unknown_fields=True):
    day: Any = None
    drivers: Any = msgspec.field(default_factory=list)
    packages: list[_Package] = msgspec.field(default_factory=list)
    release: bool = False


_BODY = msgspec.json.Decoder(_Body)


def _decode_fast(raw: bytes) -> ManifestBody | None:
    """The body read by the mirror structs, or None if they refuse it."""
    try:
        body = _BODY.decode(raw)
    except msgspec.DecodeError:  # msgspec.ValidationError is a DecodeError too
        return None
    ids = [package.package_id for package in body.packages]
    if not _valid_ids(ids):
        return None
    if len(set(ids)) != len(ids):
        check_unique_packages(ids)  # names the duplicates
    return ManifestBody(_valid_day(body.day), parse_drivers(body.drivers), body.packages, body.release)


def _valid_ids(ids: list[str]) -> bool:
    """Every id matches ``models.Identifier``'s pattern. Newline separates them in the joined
    string and is not in the pattern, so counting newlines shows no id contains one."""
    if not ids:
        return True
    joined = "\n".join(ids) + "\n"
    return joined.count("\n") == len(ids) and _IDS.fullmatch(joined) is not None


# --- the authoritative reader -----------------------------------------------------------------


def _decode_checked(raw: bytes) -> ManifestBody:
    try:
        payload = orjson.loads(raw)
    except (orjson.JSONDecodeError, RecursionError) as exc:
        raise InvalidManifest([{"field": "body", "message": f"the body is not valid JSON: {exc}"}]) from None
    if not isinstance(payload, dict):
        raise InvalidManifest([{"field": "body", "message": "the body must be a JSON object"}])
    extra = sorted(set(payload) - set(BODY_FIELDS))
    if extra:
        raise InvalidManifest([{"field": f, "message": f"unknown field {f!r}"} for f in extra])
    day = _valid_day(payload.get("day"))
    drivers = parse_drivers(payload.get("drivers", []))
    release = payload.get("release", False)
    if not isinstance(release, bool):
        raise InvalidManifest([{"field": "release", "message": "release must be true or false"}])
    return ManifestBody(day, drivers, package_records(payload.get("packages", [])), release)


def _valid_day(value: Any) -> str | None:
    if value is None:
        return None
    try:
        if isinstance(value, str) and len(value) == 10:
            return Date.fromisoformat(value).isoformat()
    except ValueError:
        pass
    raise InvalidManifest([{"field": "day", "message": "day must be a date as YYYY-MM-DD"}])
