"""Issue 10, DynamoDB's limits on an item (``depot.storage.limits``), held to boto3's own
number context and to DynamoDB's documented size rules; and to the emulator for numbers."""

from __future__ import annotations

import math
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, Inexact, Rounded

import pytest
from boto3.dynamodb.types import DYNAMODB_CONTEXT
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from depot.storage.limits import MAX_ITEM_BYTES, UnstorableItem, check_item, check_items

EXACT = Context(prec=1000, Emax=MAX_EMAX, Emin=MIN_EMIN)


def dynamodb_accepts(number) -> bool:
    """boto3's serializer context (DynamoDB's 38 digits, its exponents), applied as DynamoDB
    does: leading and trailing zeros trimmed first; and DynamoDB's documented maximum,
    9.99...E+125 and minimum 1E-130 (boto3 lets 1E+126 through)."""
    if isinstance(number, float) and not math.isfinite(number):
        return False
    value = Decimal(repr(number) if isinstance(number, float) else str(number))
    if not value.is_finite():
        return False
    if value.is_zero():
        return True
    try:
        DYNAMODB_CONTEXT.create_decimal(value.normalize(EXACT))
    except (Inexact, Rounded, ArithmeticError):
        return False
    return -130 <= value.adjusted() <= 125  # boto3 lets subnormals to 1E-165 through


def accepted(value) -> bool:
    try:
        check_item({"v": value})
    except UnstorableItem:
        return False
    return True


NUMBERS = (
    st.floats()
    | st.integers(min_value=-(10**140), max_value=10**140)
    | st.integers(-(10**40), 10**40).map(lambda i: i * 10**80)
    | st.decimals(allow_nan=True, allow_infinity=True)
    | st.builds(
        lambda d, e: Decimal(d).scaleb(e), st.integers(-(10**40), 10**40), st.integers(-180, 140)
    )
    | st.sampled_from(
        [
            1e-130,
            9.9e-131,
            2.4e-267,
            5e-324,
            1e126,
            9.999999999999999e125,
            0.0,
            -0.0,
            Decimal("1E-130"),
            Decimal("1E+126"),
            Decimal("9.9E+125"),
            Decimal("0E-200"),
            10**38 - 1,
            10**38 + 1,
            10**125,
            10**126,
        ]
    )
)


@settings(max_examples=2000)
@given(NUMBERS)
def test_numbers_are_refused_exactly_when_dynamodb_refuses_them(number):
    assert accepted(number) == dynamodb_accepts(number), number


@pytest.mark.parametrize(
    "number",
    [
        2.4e-267,
        1e126,
        float("nan"),
        float("inf"),
        10**38 + 1,
        Decimal("1.234567890123456789012345678901234567891"),
    ],
)
def test_an_unstorable_number_names_the_attribute(number):
    with pytest.raises(UnstorableItem) as info:
        check_item(
            {
                "day": "2030-01-01",
                "record": {"packages": [{"volume_m3": 1.0}, {"volume_m3": number}]},
            }
        )
    assert info.value.details["attribute"] == "record.packages[1].volume_m3"
    assert "volume_m3" in str(info.value)


def reference_size(value) -> int:
    """DynamoDB's documented item-size rules, written out plainly."""
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, (int, float, Decimal)):
        if value == 0:
            return 1
        digits = (
            Decimal(repr(value) if isinstance(value, float) else str(value))
            .normalize(DYNAMODB_CONTEXT)
            .as_tuple()
            .digits
        )
        return math.ceil(len(digits) / 2) + 1
    if isinstance(value, dict):
        return 3 + sum(1 + len(k.encode()) + reference_size(v) for k, v in value.items())
    return 3 + sum(1 + reference_size(v) for v in value)


VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False, min_value=1e-100, max_value=1e100),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=500)
@given(st.dictionaries(st.text(min_size=1, max_size=10), VALUES, min_size=1, max_size=8))
def test_the_size_follows_dynamodbs_rules(item):
    expected = sum(len(k.encode()) + reference_size(v) for k, v in item.items())
    assert check_item(item) == expected


def test_an_item_over_400_kb_is_refused_and_one_at_the_limit_is_not():
    name = "body"
    assert check_item({name: "x" * (MAX_ITEM_BYTES - len(name))}) == MAX_ITEM_BYTES
    with pytest.raises(UnstorableItem) as info:
        check_item({name: "x" * (MAX_ITEM_BYTES - len(name) + 1)})
    assert info.value.details["reason"] == "item too large"
    with pytest.raises(UnstorableItem):
        check_item({"é" * 100: "é" * (MAX_ITEM_BYTES // 2 - 99)})  # two bytes a character


@given(st.integers(1, 40))
def test_nesting_deeper_than_32_is_refused(depth):
    value: object = 1
    for level in range(depth):
        value = {"m": value} if level % 2 else [value]
    assert accepted(value) == (depth <= 31)  # the item itself is the 32nd level


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"driver_id": "", "package_id": "p"}, "empty"),
        ({"driver_id": "d"}, "missing"),
        ({"driver_id": "d" * 2049, "package_id": "p"}, "2,049 bytes"),
        ({"driver_id": "d", "package_id": "p" * 1025}, "1,025 bytes"),
        ({"driver_id": "é" * 1025, "package_id": "p"}, "2,050 bytes"),
        ({"driver_id": ["d"], "package_id": "p"}, "must be a string"),
    ],
)
def test_keys_are_checked(item, reason):
    with pytest.raises(UnstorableItem) as info:
        check_item(item, partition_key="driver_id", sort_key="package_id")
    assert reason in str(info.value)


def test_keys_at_their_limits_pass():
    check_item({"driver_id": "d" * 2048, "package_id": "p" * 1024}, "driver_id", "package_id")


def test_unknown_types_and_bad_names_are_refused():
    for item in ({"v": object()}, {"v": {1: "x"}}, {"": 1}, {"v": {"": 1}}):
        with pytest.raises(UnstorableItem):
            check_item(item)


def test_a_batch_is_the_sum_of_its_items():
    items = [{"k": str(i), "n": i} for i in range(100)]
    assert check_items(items, "k") == sum(check_item(i) for i in items)


@pytest.mark.parametrize("number", [2.4e-267, 1e-130, 9.9e125, 10**37])
def test_the_emulator_agrees_on_numbers(emulator, number):
    """What check_item accepts the emulator stores; what it refuses the emulator refuses
    (moto checks the magnitude's lower end; it lets 39 digits and 1E+126 through, DynamoDB not)."""
    from depot.storage.aws import to_item

    dynamodb = emulator.client("dynamodb")
    table = "HardeningLimits"
    try:
        dynamodb.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
    item = {"k": f"n-{number!r}", "v": number}
    try:
        dynamodb.put_item(TableName=table, Item=to_item(item))
        stored = True
    except ClientError:
        stored = False
    assert accepted(number) == stored
