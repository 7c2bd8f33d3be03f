"""Reading a manifest body as it arrives (SPEC 2): a fast decoder for the bodies that are valid,
and the pydantic models, which name every problem, for the rest.

Why two readers: parsing the 100,000 packages of a large day with orjson and validating them with
the models takes about 0.6 s; msgspec decodes the same bytes straight into structs carrying the
same constraints in about 0.11 s (docs/performance.md). The models in ``depot.core.models`` stay the
contract. The structs below mirror them and must never accept what the models refuse
(``tests/core/test_manifest.py`` generates near-miss packages and checks exactly that); whatever the
fast decoder refuses is read again by the models, whose errors are what the dispatcher sees.
Drivers (a thousand, not a hundred thousand) always go through the models.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date as Date
from operator import attrgetter
from typing import Annotated, Any, Literal

import msgspec
import orjson
from msgspec import Meta, Struct

from depot.core import models
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

    def package_ids(self) -> list[str]:
        """The packages' ids, without building their stored form."""
        if self.packages and isinstance(self.packages[0], dict):
            return [p["package_id"] for p in self.packages]
        return [p.package_id for p in self.packages]

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

# models.Identifier's length here; its pattern in one regex pass over all ids (``_valid_ids``),
# which is a third of the cost of msgspec's per-string pattern. msgspec is strict already: a bool is
# not a number, a string is not a number, a float is not an int (nor a hazmat class).
_Identifier = Annotated[str, Meta(min_length=1, max_length=models.MAX_ID_CHARS)]
_IDS = re.compile(r"(?:[A-Za-z0-9_.:\-]+\n)*")


def _number(bounds: dict[str, float]) -> Any:
    if bounds.get("gt") == 0:  # the same as models' gt=0 and _storable's lower magnitude
        bounds = {"ge": models.MIN_MAGNITUDE, "le": bounds["le"]}
    return Annotated[float, Meta(**bounds)]  # type: ignore[call-overload]  # bounds are ge/le/gt floats


class _Destination(Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    street: Annotated[str, Meta(max_length=models.MAX_STREET_CHARS)] | None = None
    city: Annotated[str, Meta(max_length=models.MAX_CITY_CHARS)] | None = None
    postcode: Annotated[str, Meta(max_length=models.MAX_POSTCODE_CHARS)] | None = None
    lat: _number(models.LATITUDE) | None = None  # type: ignore[valid-type]  # a constrained type built at import
    lon: _number(models.LONGITUDE) | None = None  # type: ignore[valid-type]  # a constrained type built at import


class _Package(Struct, forbid_unknown_fields=True, gc=False):
    package_id: _Identifier
    weight_kg: _number(models.WEIGHT_KG)  # type: ignore[valid-type]  # a constrained type built at import
    is_perishable: bool
    region: Literal["north", "east", "south", "west"]
    distance_km: _number(models.DISTANCE_KM)  # type: ignore[valid-type]  # a constrained type built at import
    is_express: bool
    is_fragile: bool
    temperature_c: _number(models.TEMPERATURE_C)  # type: ignore[valid-type]  # a constrained type built at import
    delivery_hour: Annotated[int, Meta(**models.HOUR)]
    volume_m3: _number(models.VOLUME_M3)  # type: ignore[valid-type]  # a constrained type built at import
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
    except (msgspec.DecodeError, RecursionError):  # a ValidationError is a DecodeError too
        return None
    if _smallest_magnitude(body.packages) < models.MIN_MAGNITUDE:
        return None
    ids = [package.package_id for package in body.packages]
    if not _valid_ids(ids):
        return None
    if len(set(ids)) != len(ids):
        check_unique_packages(ids)  # names the duplicates
    return ManifestBody(
        _valid_day(body.day), parse_drivers(body.drivers), body.packages, body.release
    )


_ZERO_OR_MORE = ("temperature_c", "distance_km")  # fields whose ranges hold zero


def _smallest_magnitude(packages: list[_Package]) -> float:
    """The smallest nonzero magnitude among the fields whose range holds zero (1.0 if none is
    smaller): ``models.MIN_MAGNITUDE`` (DynamoDB's) is no interval msgspec can check. The
    positive fields have it as their lower bound instead. Iterators only, no Python loop: about
    25 ms for 100,000 packages with destinations (docs/performance.md)."""
    smallest = 1.0
    for name in _ZERO_OR_MORE:
        smallest = min(
            smallest, min(map(abs, filter(None, map(attrgetter(name), packages))), default=1.0)
        )
    destinations = list(filter(None, map(attrgetter("destination"), packages)))
    for name in ("lat", "lon"):
        smallest = min(
            smallest, min(map(abs, filter(None, map(attrgetter(name), destinations))), default=1.0)
        )
    return smallest


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
        raise InvalidManifest(
            [{"field": "body", "message": f"the body is not valid JSON: {exc}"}]
        ) from None
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
        if isinstance(value, str) and models.DAY_FORMAT.fullmatch(value):
            return Date.fromisoformat(value).isoformat()
    except ValueError:
        pass
    raise InvalidManifest([{"field": "day", "message": models.DAY_MESSAGE}])
