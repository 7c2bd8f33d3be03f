"""Factories of the daily lists' records for the unit tests: a valid package, a driver with one
rule (override any field)."""

from __future__ import annotations


def driver_with(code: str, params, driver_id: str = "driver_7", rule_id: str = "rule-abc") -> dict:
    return {"driver_id": driver_id, "rules": [{"rule_id": rule_id, "code": code, "params": params}]}


def package(**overrides) -> dict:
    base = {
        "package_id": "0b6f7c1e-3d2a-4f5b-9c8d-7e6f5a4b3c2d",
        "weight_kg": 4.25,
        "is_perishable": False,
        "region": "north",
        "distance_km": 12.5,
        "is_express": True,
        "is_fragile": False,
        "hazmat_class": None,
        "temperature_c": 5.0,
        "delivery_hour": 9,
        "volume_m3": 0.75,
    }
    base.update(overrides)
    return base
