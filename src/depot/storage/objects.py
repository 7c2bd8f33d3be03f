"""The S3 state bucket: the day's manifest and each committed run or snapshot, as JSON, under
keys that are never overwritten."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import zstandard

from depot.config import Settings
from depot.storage.aws import outage_guard

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
COMPRESS_MIN_BYTES = 64 * 1024


def pack(document: bytes) -> bytes:
    """A JSON document as the state bucket keeps it: zstd-compressed from 64 KiB up.

    A large day's manifest shrinks 5x and is stored in a third of the time; compressing it takes
    about 50 ms and releases the GIL, so it can run while the body is validated
    (docs/performance.md). ``get_bytes`` recognises the zstd frame (JSON never starts so).
    """
    if len(document) < COMPRESS_MIN_BYTES:
        return document
    return zstandard.ZstdCompressor(level=1).compress(document)


@dataclass
class StateBucket:
    """The state bucket's JSON documents, each written once and never overwritten."""

    settings: Settings
    s3: Any

    def put_json(self, key: str, payload: Any) -> None:
        """Store once, never overwrite (``If-None-Match: *``)."""
        self.put_bytes(key, pack(orjson.dumps(payload)))

    def put_bytes(self, key: str, body: bytes) -> None:
        """Store a JSON document once, never overwrite; ``body`` as it is or ``pack``-ed."""
        extra = {"ContentEncoding": "zstd"} if body[:4] == ZSTD_MAGIC else {}
        with outage_guard("storing state"):
            self.s3.put_object(
                Bucket=self.settings.state_bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                IfNoneMatch="*",
                **extra,
            )

    def get_json(self, key: str) -> Any:
        return orjson.loads(self.get_bytes(key))

    def get_bytes(self, key: str) -> bytes:
        with outage_guard("reading state"):
            body = self.s3.get_object(Bucket=self.settings.state_bucket, Key=key)["Body"].read()
        return zstandard.ZstdDecompressor().decompress(body) if body[:4] == ZSTD_MAGIC else body
