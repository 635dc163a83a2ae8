"""An artifact store in an S3 bucket (AWS S3, MinIO, any S3 API), through boto3.

This is the only module that imports boto3: everything else speaks `ArtifactStore` and the
project's errors. Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID and friends,
profiles, instance roles).
"""

from __future__ import annotations

import contextlib
import functools
import io
import mimetypes
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from studio.artifacts.base import ArtifactStore, ObjectInfo
from studio.artifacts.errors import (
    ArtifactNotFound,
    ArtifactStoreUnavailable,
    InvalidArtifactKey,
)
from studio.artifacts.keys import MAX_KEY_BYTES, is_canonical_key, validate_key, validate_prefix

if TYPE_CHECKING:
    from collections.abc import Buffer, Iterator

_MIB = 1024 * 1024
# Error codes S3 (and S3 look-alikes) use for "no such object"; HEAD answers carry no body,
# so botocore reports the bare status code there.
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_BOTO_ERRORS = (BotoCoreError, ClientError, S3UploadFailedError)
# DeleteObjects takes at most this many keys per request.
_DELETE_BATCH = 1000


class S3ArtifactStore(ArtifactStore):
    """Objects under `s3://<bucket>/<prefix>/`; the key is the object name after the prefix.

    `endpoint_url` points at a non-AWS S3 API (MinIO, moto); path-style addressing is then
    used because such servers rarely have wildcard DNS for virtual-hosted buckets.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_attempts: int = 3,
        multipart_threshold: int = 8 * _MIB,
        multipart_chunksize: int = 8 * _MIB,
    ) -> None:
        if not bucket or "/" in bucket or any(char.isspace() for char in bucket):
            raise ValueError(f"invalid S3 bucket name {bucket!r}")
        try:
            prefix = validate_prefix(prefix.strip("/"))
        except InvalidArtifactKey as error:
            raise ValueError(f"invalid S3 prefix: {error.message}") from None
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.region = region
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_attempts = max_attempts
        self._transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=multipart_chunksize
        )
        # Full object names are "<prefix>/<key>"; with no prefix, keys sit at the bucket root.
        self._key_base = f"{prefix}/" if prefix else ""

    # -- reads -----------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        key, name = self._object_name(key)
        with self._translate_errors(key):
            response = self._client.get_object(Bucket=self.bucket, Key=name)
            data: bytes = response["Body"].read()
            return data

    def open(self, key: str) -> BinaryIO:
        key, name = self._object_name(key)
        with self._translate_errors(key):
            response = self._client.get_object(Bucket=self.bucket, Key=name)
        raw = _StreamingBodyReader(response["Body"], functools.partial(self._raise, key=key))
        return io.BufferedReader(raw, buffer_size=_MIB)

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ArtifactNotFound:
            return False
        return True

    def stat(self, key: str) -> ObjectInfo:
        key, name = self._object_name(key)
        with self._translate_errors(key):
            head = self._client.head_object(Bucket=self.bucket, Key=name)
        return ObjectInfo(
            key=key, size=int(head["ContentLength"]), last_modified=_utc(head["LastModified"])
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Validation happens here, eagerly; only the paging itself is lazy.
        prefix = validate_prefix(prefix)
        return self._list_folder(self._folder_name(prefix))

    # -- writes ----------------------------------------------------------------------------

    def put(self, key: str, data: bytes | BinaryIO, content_type: str | None = None) -> ObjectInfo:
        key, name = self._object_name(key)
        extra = {"ContentType": content_type or _guess_content_type(key)}
        threshold = self._transfer_config.multipart_threshold
        if isinstance(data, bytes | bytearray | memoryview) and len(data) < threshold:
            with self._translate_errors(key):
                self._client.put_object(Bucket=self.bucket, Key=name, Body=data, **extra)
        else:
            # upload_fileobj switches to a multipart upload past the threshold, so streams
            # of any size go through without being held in memory.
            stream = io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data
            with self._translate_errors(key):
                self._client.upload_fileobj(
                    stream, self.bucket, name, ExtraArgs=extra, Config=self._transfer_config
                )
        return self.stat(key)

    def delete(self, key: str) -> None:
        key, name = self._object_name(key)
        with self._translate_errors(key):
            # S3 answers 204 for a missing key too, which makes this idempotent for free.
            self._client.delete_object(Bucket=self.bucket, Key=name)

    def delete_prefix(self, prefix: str) -> int:
        prefix = validate_prefix(prefix, allow_empty=False)
        deleted = 0
        with self._translate_errors(None):
            # Deleting while paging is safe: ListObjectsV2 continues after the last key seen.
            for page in self._pages(self._folder_name(prefix)):
                batch = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if not batch:
                    continue
                response = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
                failures = response.get("Errors", [])
                deleted += len(batch) - len(failures)
                if failures:
                    first = failures[0]
                    raise ArtifactStoreUnavailable(
                        f"{self.describe()}: could not delete {len(failures)} objects under "
                        f"{prefix!r} ({first.get('Code')}: {first.get('Key')}); "
                        f"{deleted} were deleted"
                    )
        return deleted

    # -- addressing ------------------------------------------------------------------------

    def uri(self, key: str) -> str:
        _, name = self._object_name(key)
        return f"s3://{self.bucket}/{name}"

    def key_from_uri(self, uri: str) -> str:
        base = f"s3://{self.bucket}/{self._key_base}"
        if not isinstance(uri, str) or not uri.startswith(base) or uri == base:
            raise InvalidArtifactKey(f"{uri!r} is not inside {self.describe()}", field="uri")
        return validate_key(uri[len(base) :])

    def check(self) -> None:
        # A write, not just a HEAD on the bucket: read-only credentials or a full or
        # missing bucket must fail readiness, not the first training job. The random name
        # keeps concurrent probes (several workers) from deleting each other's object.
        name = f"{self._key_base}.studiolo-probe-{secrets.token_hex(8)}"
        try:
            self._probe_client.put_object(Bucket=self.bucket, Key=name, Body=b"")
            self._probe_client.delete_object(Bucket=self.bucket, Key=name)
        except _BOTO_ERRORS as error:
            raise ArtifactStoreUnavailable(
                f"{self.describe()} is not writable: {_reason(error)}"
            ) from None

    def describe(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{where} at {self.endpoint_url}" if self.endpoint_url else where

    # -- helpers ---------------------------------------------------------------------------

    @functools.cached_property
    def _client(self) -> Any:
        return self._make_client(self._connect_timeout, self._read_timeout, self._max_attempts)

    @functools.cached_property
    def _probe_client(self) -> Any:
        # A readiness probe must answer quickly: one attempt, short timeouts.
        return self._make_client(connect_timeout=2.0, read_timeout=5.0, max_attempts=1)

    def _make_client(self, connect_timeout: float, read_timeout: float, max_attempts: int) -> Any:
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            s3={"addressing_style": "path"} if self.endpoint_url else None,
        )
        # A session per store: boto3's default session is shared global state and not
        # thread-safe to create clients from; the client itself is thread-safe.
        session = boto3.session.Session()
        return session.client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region, config=config
        )

    def _object_name(self, key: str) -> tuple[str, str]:
        key = validate_key(key)
        name = self._key_base + key
        if len(name.encode("utf-8")) > MAX_KEY_BYTES:
            raise InvalidArtifactKey(
                f"artifact key {key[:40]!r}... is too long for {self.describe()}: with the "
                f"prefix it exceeds S3's limit of {MAX_KEY_BYTES} bytes"
            )
        return key, name

    def _folder_name(self, prefix: str) -> str:
        return f"{self._key_base}{prefix}/" if prefix else self._key_base

    def _pages(self, folder_name: str) -> Iterator[dict[str, Any]]:
        paginator = self._client.get_paginator("list_objects_v2")
        pages: Iterator[dict[str, Any]] = paginator.paginate(
            Bucket=self.bucket,
            Prefix=folder_name,
            PaginationConfig={"PageSize": _DELETE_BATCH},
        )
        return pages

    def _list_folder(self, folder_name: str) -> Iterator[ObjectInfo]:
        with self._translate_errors(None):
            # S3 lists in UTF-8 byte order, which is also Python's str order: sorted already.
            for page in self._pages(folder_name):
                for item in page.get("Contents", []):
                    key = item["Key"][len(self._key_base) :]
                    # Folder markers ("x/") and names written by other tools that this store
                    # could not address again are skipped.
                    if is_canonical_key(key):
                        yield ObjectInfo(
                            key=key,
                            size=int(item["Size"]),
                            last_modified=_utc(item["LastModified"]),
                        )

    @contextlib.contextmanager
    def _translate_errors(self, key: str | None) -> Iterator[None]:
        try:
            yield
        except _BOTO_ERRORS as error:
            self._raise(error, key=key)

    def _raise(self, error: Exception, *, key: str | None) -> NoReturn:
        """Turn a boto3/botocore error into the project's own."""
        not_found = isinstance(error, ClientError) and _error_code(error) in _NOT_FOUND_CODES
        if key is not None and not_found:
            raise ArtifactNotFound(f"no artifact {key!r} in {self.describe()}") from None
        raise ArtifactStoreUnavailable(f"{self.describe()}: {_reason(error)}") from error


class _StreamingBodyReader(io.RawIOBase):
    """botocore's streaming body as a raw file whose errors are the project's own.

    Wrapped in a BufferedReader by `open`, so callers get an ordinary binary file: read(n),
    iteration over lines, `with` blocks; and a dropped connection mid-download surfaces as
    ArtifactStoreUnavailable instead of a botocore exception.
    """

    def __init__(self, body: Any, on_error: Any) -> None:
        super().__init__()
        self._body = body
        self._on_error = on_error

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
        view = memoryview(buffer).cast("B")
        chunk = self._read(len(view))
        view[: len(chunk)] = chunk
        return len(chunk)

    def readall(self) -> bytes:
        return self._read(None)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()

    def _read(self, size: int | None) -> bytes:
        try:
            data: bytes = self._body.read(size)
        except _BOTO_ERRORS as error:
            self._on_error(error)
            raise  # on_error always raises; this keeps the control flow obvious.
        return data


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _reason(error: Exception) -> str:
    """A short, single-line reason: the S3 error code and message, or botocore's text."""
    if isinstance(error, ClientError):
        message = error.response.get("Error", {}).get("Message", "")
        return f"{_error_code(error)} {message}".strip()
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _guess_content_type(key: str) -> str:
    content_type, encoding = mimetypes.guess_type(key, strict=False)
    # "model.tar.gz" guesses as x-tar with gzip *encoding*; labelling the compressed bytes
    # as a tar would be wrong, so anything encoded is just bytes.
    if content_type is None or encoding is not None:
        return "application/octet-stream"
    return content_type
