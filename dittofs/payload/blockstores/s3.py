"""S3BlockStore: blocks as S3 objects through boto3, in a bounded pool of its own.

Blocks are at most 4 MiB, below S3's 5 MiB minimum part size, so each is one PutObject;
a single object is atomic to readers.  Checksums default to ``when_required`` so that
S3-compatible servers that reject the newer checksum headers still work.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from zope.interface import implementer

from dittofs.payload.interfaces import IBlockStore
from dittofs.threads import LazyPool


@implementer(IBlockStore)
class S3BlockStore:
    def __init__(self, name: str, bucket: str, prefix: str = "", endpoint_url: str | None = None,
                 region: str = "us-east-1", path_style: bool = True,
                 access_key: str | None = None, secret_key: str | None = None,
                 checksums: str = "when_required", threads_max: int = 8,
                 create_bucket: bool = False, reactor: Any = None) -> None:
        import boto3
        from botocore.config import Config as BotoConfig

        self.name = name
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        cfg = BotoConfig(
            region_name=region, s3={"addressing_style": "path" if path_style else "auto"},
            retries={"mode": "standard", "max_attempts": 2}, max_pool_connections=threads_max * 2,
            connect_timeout=5, read_timeout=30,
            request_checksum_calculation=checksums, response_checksum_validation=checksums)
        session = boto3.session.Session()
        self.client = session.client("s3", endpoint_url=endpoint_url, aws_access_key_id=access_key,
                                     aws_secret_access_key=secret_key, config=cfg)
        if create_bucket:
            try:
                self.client.head_bucket(Bucket=bucket)
            except self.client.exceptions.ClientError:
                self.client.create_bucket(Bucket=bucket)
        self.pool = LazyPool(f"s3-{name}", threads_max, reactor)

    def _get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise KeyError(key) from None

    def _keys(self) -> list[str]:
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix):
            out += [o["Key"][len(self.prefix):] for o in page.get("Contents", [])]
        return out

    def _put(self, key: str, data: Any) -> None:
        # boto3 wants bytes or a file; a view is copied here, in the pool, not on the reactor
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=bytes(data))

    def put(self, key: str, data: Any) -> Any:
        return self.pool.run(self._put, key, data)

    def get(self, key: str) -> Any:
        return self.pool.run(self._get, key)

    def delete(self, key: str) -> Any:
        return self.pool.run(self.client.delete_object, Bucket=self.bucket, Key=self.prefix + key)

    def keys(self) -> Any:
        return self.pool.run(self._keys)

    def close(self) -> Any:
        self.pool.stop()
        return defer.succeed(None)
