"""The day's lists: drivers, their rules, packages (SPEC section 1), and the lifecycle.

Pure data and validation, no I/O. Validation errors name the driver, the rule or the package
they concern, so that an import can be refused with a message a dispatcher can act on.
"""

from __future__ import annotations

import gc
import re
import typing
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date as Date
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

REGIONS = ("north", "east", "south", "west")
HAZMAT_CLASSES = (1, 2, 3, 4)

# DynamoDB stores numbers of magnitude 1E-130 to 9.9E+125 (or zero) with at most 38 significant
# digits. Every range below lies inside it, and a float has at most 17 significant digits, so only
# a nonzero magnitude under this one can be valid here and yet unstorable (``_storable``).
MIN_MAGNITUDE = 1e-130

# The plausible ranges of every number an import accepts (README, "Rules"; the fast decoder in
# ``depot.core.manifest`` mirrors them).
WEIGHT_KG = {"gt": 0, "le": 1_000}
DISTANCE_KM = {"ge": 0, "le": 20_000}
TEMPERATURE_C = {"ge": -100, "le": 100}
VOLUME_M3 = {"gt": 0, "le": 100}
HOUR = {"ge": 0, "le": 23}
LATITUDE = {"ge": -90, "le": 90}
LONGITUDE = {"ge": -180, "le": 180}
MAX_ID_CHARS, MAX_STREET_CHARS, MAX_CITY_CHARS, MAX_POSTCODE_CHARS = 128, 200, 100, 20
# a day is written YYYY-MM-DD and nothing else (``date.fromisoformat`` also reads week dates
# such as 2026-W01-1, and pydantic a midnight datetime: neither is a day here)
DAY_FORMAT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DAY_MESSAGE = "day must be a date as YYYY-MM-DD"
ID_PATTERN = r"^[A-Za-z0-9_.:\-]+$"


def _storable(value: float) -> float:
    if value != 0 and abs(value) < MIN_MAGNITUDE:
        raise ValueError(
            "a nonzero number must be at least 1E-130 in magnitude (DynamoDB cannot store it)"
        )
    return value


Identifier = Annotated[
    str, StringConstraints(strict=True, min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)
]
Region = Literal["north", "east", "south", "west"]
StrictFloat = Annotated[float, Field(strict=True, allow_inf_nan=False), AfterValidator(_storable)]
StrictInt = Annotated[int, Field(strict=True)]
StrictBool = Annotated[bool, Field(strict=True)]
# Not a Literal: pydantic matches literals by equality, so true and 3.0 would pass as 1 and 3.
HazmatClass = Annotated[StrictInt, Field(ge=1, le=4)]


def _day_text(value: Any) -> Any:
    """Only ``YYYY-MM-DD`` reaches the date parser: not a week date, a datetime or a number
    (pydantic's lax date reads an integer as a Unix time)."""
    if isinstance(value, Date) or (isinstance(value, str) and DAY_FORMAT.fullmatch(value)):
        return value
    raise ValueError(DAY_MESSAGE)


Day = Annotated[Date, BeforeValidator(_day_text)]


def Text(max_length: int):
    return Annotated[str, StringConstraints(strict=True, max_length=max_length)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- Rules ------------------------------------------------------------------------------------


class NoParams(Strict):
    pass


class MaxWeightParams(Strict):
    limit_kg: Annotated[StrictFloat, Field(**WEIGHT_KG)]


class RegionOnlyParams(Strict):
    allowed_regions: Annotated[list[Region], Field(min_length=1, max_length=4)]

    @model_validator(mode="after")
    def _unique(self) -> RegionOnlyParams:
        if len(set(self.allowed_regions)) != len(self.allowed_regions):
            raise ValueError("allowed_regions must not repeat a region")
        return self


class MaxDistanceParams(Strict):
    max_km: Annotated[StrictFloat, Field(gt=0, le=DISTANCE_KM["le"])]


class HazmatAllowedParams(Strict):
    allowed_classes: Annotated[list[HazmatClass], Field(min_length=1, max_length=4)]

    @model_validator(mode="after")
    def _unique(self) -> HazmatAllowedParams:
        if len(set(self.allowed_classes)) != len(self.allowed_classes):
            raise ValueError("allowed_classes must not repeat a class")
        return self


class TempControlParams(Strict):
    min_c: Annotated[StrictFloat, Field(**TEMPERATURE_C)]
    max_c: Annotated[StrictFloat, Field(**TEMPERATURE_C)]

    @model_validator(mode="after")
    def _ordered(self) -> TempControlParams:
        if self.min_c > self.max_c:
            raise ValueError("min_c must not exceed max_c")
        return self


class TimeWindowParams(Strict):
    start_hour: Annotated[StrictInt, Field(**HOUR)]
    end_hour: Annotated[StrictInt, Field(ge=1, le=24)]

    @model_validator(mode="after")
    def _ordered(self) -> TimeWindowParams:
        if self.start_hour >= self.end_hour:
            raise ValueError("start_hour must be before end_hour")
        return self


class OversizedParams(Strict):
    min_volume_m3: Annotated[StrictFloat, Field(ge=0, le=VOLUME_M3["le"])]


class RuleCode(StrEnum):
    MAX_WEIGHT = "MAX_WEIGHT"
    NO_PERISHABLE = "NO_PERISHABLE"
    REGION_ONLY = "REGION_ONLY"
    MAX_DISTANCE = "MAX_DISTANCE"
    EXPRESS_ONLY = "EXPRESS_ONLY"
    FRAGILE_ONLY = "FRAGILE_ONLY"
    HAZMAT_ALLOWED = "HAZMAT_ALLOWED"
    TEMP_CONTROL = "TEMP_CONTROL"
    TIME_WINDOW = "TIME_WINDOW"
    OVERSIZED = "OVERSIZED"


PARAMS_BY_CODE: dict[RuleCode, type[Strict]] = {
    RuleCode.MAX_WEIGHT: MaxWeightParams,
    RuleCode.NO_PERISHABLE: NoParams,
    RuleCode.REGION_ONLY: RegionOnlyParams,
    RuleCode.MAX_DISTANCE: MaxDistanceParams,
    RuleCode.EXPRESS_ONLY: NoParams,
    RuleCode.FRAGILE_ONLY: NoParams,
    RuleCode.HAZMAT_ALLOWED: HazmatAllowedParams,
    RuleCode.TEMP_CONTROL: TempControlParams,
    RuleCode.TIME_WINDOW: TimeWindowParams,
    RuleCode.OVERSIZED: OversizedParams,
}


class Rule(Strict):
    """One operational rule of a driver: ``code`` names the predicate, ``params`` configure it."""

    rule_id: Identifier
    code: RuleCode
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _params_match_code(self) -> Rule:
        validated = PARAMS_BY_CODE[self.code].model_validate(self.params)
        object.__setattr__(self, "params", validated.model_dump())
        return self

    def key(self) -> tuple:
        """A hashable identity of what the rule demands (its id aside)."""
        return (self.code.value, tuple(sorted((k, _freeze(v)) for k, v in self.params.items())))


def _freeze(value: Any) -> Any:
    return tuple(sorted(value)) if isinstance(value, list) else value


SET_PARAMS = frozenset(  # codes with a list param (a set: its order does not matter)
    code
    for code, model in PARAMS_BY_CODE.items()
    if any(typing.get_origin(f.annotation) is list for f in model.model_fields.values())
)


class Driver(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    driver_id: Identifier = Field(validation_alias=AliasChoices("driver_id", "id"))
    rules: list[Rule] = Field(default_factory=list, max_length=100)

    def rule_keys(self) -> tuple[tuple, ...]:
        """Per rule, a hashable identity of what it demands: equal exactly when ``Rule.key()``
        is, at a fraction of its cost (params are a validated model's dump, so one code's names
        always come in the same order; list params are sets). Not kept with the driver: the
        rule table built from them is remembered per driver list (``classes._rule_table``), and
        kept keys were most of a small adversarial day's memory above the full graph's."""
        return tuple(
            (rule.code.value, *[_freeze(v) for v in rule.params.values()])
            if rule.code in SET_PARAMS
            else (rule.code.value, *rule.params.values())
            for rule in self.rules
        )


# --- Packages ---------------------------------------------------------------------------------


class Destination(Strict):
    street: Text(MAX_STREET_CHARS) | None = None  # type: ignore[valid-type]  # a constrained type built at import
    city: Text(MAX_CITY_CHARS) | None = None  # type: ignore[valid-type]  # a constrained type built at import
    postcode: Text(MAX_POSTCODE_CHARS) | None = None  # type: ignore[valid-type]  # a constrained type built at import
    lat: Annotated[StrictFloat, Field(**LATITUDE)] | None = None
    lon: Annotated[StrictFloat, Field(**LONGITUDE)] | None = None


class Package(Strict):
    package_id: Identifier
    weight_kg: Annotated[StrictFloat, Field(**WEIGHT_KG)]
    is_perishable: StrictBool
    region: Region
    distance_km: Annotated[StrictFloat, Field(**DISTANCE_KM)]
    is_express: StrictBool
    is_fragile: StrictBool
    hazmat_class: HazmatClass | None = None
    temperature_c: Annotated[StrictFloat, Field(**TEMPERATURE_C)]
    delivery_hour: Annotated[StrictInt, Field(**HOUR)]
    volume_m3: Annotated[StrictFloat, Field(**VOLUME_M3)]
    destination: Destination | None = None


PackageList = TypeAdapter(list[Package])


# --- Manifests and errors ---------------------------------------------------------------------


class InvalidManifest(ValueError):
    """The day's lists were refused; ``problems`` names each offending driver, rule or package."""

    def __init__(self, problems: list[dict[str, Any]]):
        self.problems = problems
        first = problems[0]["message"] if problems else "invalid manifest"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(first + more)


MAX_REPORTED_PROBLEMS = 50


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ()))
    return f"{loc}: {err['msg']}" if loc else err["msg"]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around a bulk validation.

    Validating a day allocates about a million objects (models, dicts, strings) and none of them
    form reference cycles; with the collector on, each burst of allocations triggers collections
    that walk the whole growing heap. Pausing it makes parsing 100,000 packages 2-3x faster
    (docs/performance.md); refcounting still frees everything as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse_drivers(raw: Any) -> list[Driver]:
    """Validate drivers one by one so that every error names its driver and rule."""
    if not isinstance(raw, list):
        raise InvalidManifest([{"field": "drivers", "message": "drivers must be a list"}])
    drivers: list[Driver] = []
    problems: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        driver_id = _raw_driver_id(item, index)
        try:
            driver = Driver.model_validate(item)
        except ValidationError as exc:
            problems.extend(_driver_problems(item, driver_id, exc))
            continue
        if driver.driver_id in seen:
            problems.append(
                {
                    "driver_id": driver.driver_id,
                    "message": f"driver {driver.driver_id!r} is listed twice",
                }
            )
        seen.add(driver.driver_id)
        drivers.append(driver)
        if len(problems) >= MAX_REPORTED_PROBLEMS:
            break
    if problems:
        raise InvalidManifest(problems[:MAX_REPORTED_PROBLEMS])
    return drivers


def _raw_driver_id(item: Any, index: int) -> str:
    if isinstance(item, dict):
        value = item.get("driver_id", item.get("id"))
        if isinstance(value, str):
            return value
    return f"#{index}"


def _driver_problems(item: Any, driver_id: str, exc: ValidationError) -> list[dict[str, Any]]:
    problems = []
    rules = item.get("rules") if isinstance(item, dict) else None
    for err in exc.errors(include_url=False, include_input=False):
        loc = err.get("loc", ())
        problem: dict[str, Any] = {"driver_id": driver_id}
        where = f"driver {driver_id!r}"
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            rule = rules[loc[1]] if isinstance(rules, list) and loc[1] < len(rules) else None
            rule_id = rule.get("rule_id") if isinstance(rule, dict) else None
            code = rule.get("code") if isinstance(rule, dict) else None
            problem.update(rule_id=rule_id, code=code)
            where += f" rule {rule_id!r} ({code})"
            err = {**err, "loc": loc[2:]}
        problem["message"] = f"{where}: {_describe(dict(err))}"
        problems.append(problem)
    return problems


def parse_packages(raw: Any) -> list[Package]:
    """Validate all packages at once (fast path), then name the offenders if any fail."""
    if not isinstance(raw, list):
        raise InvalidManifest([{"field": "packages", "message": "packages must be a list"}])
    try:
        with gc_paused():
            packages = PackageList.validate_python(raw)
    except ValidationError as exc:
        raise InvalidManifest(_package_problems(raw, exc)) from None
    check_unique_packages(p.package_id for p in packages)
    return packages


def check_unique_packages(package_ids: Iterable[str]) -> None:
    duplicates = _duplicates(package_ids)
    if duplicates:
        raise InvalidManifest(
            [
                {"package_id": pid, "message": f"package {pid!r} is listed more than once"}
                for pid in duplicates[:MAX_REPORTED_PROBLEMS]
            ]
        )


def package_records(raw: Any) -> list[dict[str, Any]]:
    """Validate packages like ``parse_packages`` and return them as plain dicts, in the stored
    form: every SPEC field (``hazmat_class`` may be null), ``destination`` only when given.

    The input dicts are reused once they have passed validation (strict models, unknown fields
    refused), which spares dumping 100,000 models back to dicts.
    """
    parse_packages(raw)
    return [_stored_record(item) for item in raw]


def _stored_record(item: dict[str, Any]) -> dict[str, Any]:
    record = dict(item)
    record.setdefault("hazmat_class", None)
    destination = record.get("destination")
    if destination is None:
        record.pop("destination", None)
    else:
        record["destination"] = {k: v for k, v in destination.items() if v is not None}
    return record


def _package_problems(raw: list[Any], exc: ValidationError) -> list[dict[str, Any]]:
    problems = []
    for err in exc.errors(include_url=False, include_input=False)[:MAX_REPORTED_PROBLEMS]:
        loc = err.get("loc", ())
        index = loc[0] if loc and isinstance(loc[0], int) else None
        item = raw[index] if index is not None else None
        pid = item.get("package_id") if isinstance(item, dict) else None
        label = f"package {pid!r}" if isinstance(pid, str) else f"package #{index}"
        problems.append(
            {
                "package_id": pid,
                "index": index,
                "message": f"{label}: {_describe({**err, 'loc': loc[1:]})}",
            }
        )
    return problems


def _duplicates(ids) -> list[str]:
    seen: set[str] = set()
    dupes: list[str] = []
    for value in ids:
        if value in seen:
            dupes.append(value)
        seen.add(value)
    return dupes


# --- Lifecycle --------------------------------------------------------------------------------


class Status(StrEnum):
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    DELIVERED = "delivered"
    FAILED_TO_DELIVER = "failed_to_deliver"


NEXT_STATUSES: dict[Status, tuple[Status, ...]] = {
    Status.ASSIGNED: (Status.ACCEPTED, Status.IN_PROGRESS, Status.FAILED_TO_DELIVER),
    Status.ACCEPTED: (Status.IN_PROGRESS, Status.FAILED_TO_DELIVER),
    Status.IN_PROGRESS: (Status.DELIVERED, Status.FAILED_TO_DELIVER),
    Status.DELIVERED: (),
    Status.FAILED_TO_DELIVER: (),
}


def previous_statuses(target: Status) -> tuple[Status, ...]:
    """The statuses from which ``target`` may be reached in one move."""
    return tuple(s for s, nexts in NEXT_STATUSES.items() if target in nexts)


__all__ = [
    "HAZMAT_CLASSES",
    "NEXT_STATUSES",
    "REGIONS",
    "Driver",
    "InvalidManifest",
    "Package",
    "Rule",
    "RuleCode",
    "Status",
    "check_unique_packages",
    "package_records",
    "parse_drivers",
    "parse_packages",
    "previous_statuses",
]
