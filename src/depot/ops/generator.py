"""The generator of each day's lists that the brief points at (SPEC section 1, "The generator").

Per driver it draws k rules (k uniform in [min_rules, max_rules]) from the ten templates without
repetition; packages follow the distributions of SPEC's package table. Deterministic for a seed:
it uses its own ``random.Random`` and uuid4 strings built from it, never the global generator.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from random import Random
from typing import Any

from depot.core.models import HAZMAT_CLASSES, REGIONS, RuleCode

STREETS = ("High St", "Station Rd", "Church Ln", "Mill Rd", "Park Ave", "Quay St", "Market Sq")
CITIES = (
    ("north", "Leeds", 53.80, -1.55),
    ("east", "Norwich", 52.63, 1.30),
    ("south", "Brighton", 50.82, -0.14),
    ("west", "Bristol", 51.45, -2.59),
)


def _uuid4(rng: Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _params(code: RuleCode, rng: Random) -> dict[str, Any]:
    if code is RuleCode.MAX_WEIGHT:
        return {"limit_kg": 10}
    if code is RuleCode.REGION_ONLY:
        return {"allowed_regions": rng.sample(REGIONS, 2)}
    if code is RuleCode.MAX_DISTANCE:
        return {"max_km": 50}
    if code is RuleCode.HAZMAT_ALLOWED:
        return {"allowed_classes": sorted(rng.sample(HAZMAT_CLASSES, rng.randint(1, 2)))}
    if code is RuleCode.TEMP_CONTROL:
        return {"min_c": 2, "max_c": 8}
    if code is RuleCode.TIME_WINDOW:
        return {"start_hour": 8, "end_hour": 17}
    if code is RuleCode.OVERSIZED:
        return {"min_volume_m3": 0.5}
    return {}


TEMPLATES: tuple[RuleCode, ...] = tuple(RuleCode)


@dataclass
class Generator:
    seed: int | None = None

    def __post_init__(self) -> None:
        self.rng = Random(self.seed)

    def rule(self, code: RuleCode) -> dict[str, Any]:
        return {"rule_id": _uuid4(self.rng), "code": code.value, "params": _params(code, self.rng)}

    def driver(self, driver_id: str, min_rules: int = 0, max_rules: int = 2) -> dict[str, Any]:
        k = self.rng.randint(min_rules, max_rules)
        codes = self.rng.sample(TEMPLATES, k)
        return {"driver_id": driver_id, "rules": [self.rule(code) for code in codes]}

    def package(self, with_destination: bool = True) -> dict[str, Any]:
        rng = self.rng
        region = rng.choice(REGIONS)
        package = {
            "package_id": _uuid4(rng),
            "weight_kg": round(rng.uniform(0.5, 20), 2),
            "is_perishable": rng.random() < 0.5,
            "region": region,
            "distance_km": round(rng.uniform(1, 100), 2),
            "is_express": rng.random() < 0.5,
            "is_fragile": rng.random() < 0.5,
            "hazmat_class": rng.choice((1, 2, 3, 4, None)),
            "temperature_c": round(rng.uniform(-5, 25), 2),
            "delivery_hour": rng.randint(0, 23),
            "volume_m3": round(rng.uniform(0.1, 3.0), 2),
        }
        if with_destination:
            package["destination"] = self.destination(region)
        return package

    def destination(self, region: str) -> dict[str, Any]:
        rng = self.rng
        _, city, lat, lon = next(c for c in CITIES if c[0] == region)
        return {
            "street": f"{rng.randint(1, 250)} {rng.choice(STREETS)}",
            "city": city,
            "postcode": (
                f"{city[:2].upper()}{rng.randint(1, 29)} {rng.randint(1, 9)}"
                f"{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
            ),
            "lat": round(lat + rng.uniform(-0.1, 0.1), 5),
            "lon": round(lon + rng.uniform(-0.1, 0.1), 5),
        }


def generate_day(
    seed: int | None = None,
    drivers: int = 99,
    packages_per_driver: int = 10,
    min_rules: int = 0,
    max_rules: int = 2,
    with_destination: bool = True,
    progress: Callable[[int], None] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """A day's lists: ``driver_1`` … ``driver_N`` and ``N * packages_per_driver`` packages.

    The defaults are the brief's day: 99 drivers with 0-2 rules each and 990 packages.
    """
    if not 0 <= min_rules <= max_rules <= len(TEMPLATES):
        raise ValueError(f"need 0 <= min_rules <= max_rules <= {len(TEMPLATES)}")
    gen = Generator(seed)
    driver_list = [gen.driver(f"driver_{i}", min_rules, max_rules) for i in range(1, drivers + 1)]
    package_list = list(_packages(gen, drivers * packages_per_driver, with_destination, progress))
    return {"drivers": driver_list, "packages": package_list}


def _packages(
    gen: Generator, count: int, with_destination: bool, progress: Callable[[int], None] | None
) -> Iterator[dict[str, Any]]:
    step = 10_000
    for i in range(count):
        yield gen.package(with_destination)
        if progress and (i + 1) % step == 0:
            progress(step)
    if progress and count % step:
        progress(count % step)
