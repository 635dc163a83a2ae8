"""`studiolo artifacts upload|download|ls`: files in and out of a team's area of the store.

A URI is `s3://<team bucket>/<key>` (`studiolo whoami` shows the bucket) or the store's own
URI (`file://...`, `s3://<store bucket>/...`, what job pages report). The studio resolves it
(`/api/v1/artifacts/resolve`); the bytes stream through the REST API with the user's token,
one file at a time, never whole in memory.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import httpx

from studio.cli.client import ApiClient
from studio.cli.common import CliError
from studio.cli.output import print_json, print_table

# Bodies can be large: the server writes an upload to the store before it answers.
TRANSFER_TIMEOUT = httpx.Timeout(600.0, connect=5.0)
CHUNK_BYTES = 1024 * 1024
# Files smaller than this go by without a progress line.
PROGRESS_MIN_BYTES = 8 * 1024 * 1024
PAGE_SIZE = 1000


@dataclass(frozen=True)
class Located:
    team: str
    key: str
    s3_uri: str


class Progress:
    """One line on stderr, rewritten in place, when stderr is a terminal and the file big."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.shown = sys.stderr.isatty() and total >= PROGRESS_MIN_BYTES
        self._last = 0.0

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.shown and (now - self._last >= 0.2 or self.done >= self.total):
            self._last = now
            percent = 100 * self.done // max(self.total, 1)
            sys.stderr.write(
                f"\r{self.label}  {_size(self.done)} / {_size(self.total)} ({percent}%)"
            )
            sys.stderr.flush()

    def finish(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


class _ProgressReader:
    """A file for httpx to stream from: it still sees the real file's length (fileno), so the
    upload carries a Content-Length, and every read moves the progress line."""

    def __init__(self, stream: BinaryIO, progress: Progress) -> None:
        self._stream = stream
        self._progress = progress

    def fileno(self) -> int:
        return self._stream.fileno()

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self._progress.advance(len(chunk))
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK_BYTES):
            yield chunk


def resolve(client: ApiClient, uri: str) -> Located:
    answer = client.get("/api/v1/artifacts/resolve", {"uri": uri})
    return Located(str(answer["team"]), str(answer["key"]), str(answer["s3_uri"]))


def listing(client: ApiClient, uri: str) -> Iterator[dict[str, Any]]:
    """Every object under `uri` (or the object it names), following the pages."""
    url: str | None = "/api/v1/artifacts"
    params: dict[str, str | int | None] | None = {"uri": uri, "limit": PAGE_SIZE}
    while url is not None:
        body = client.get(url, params)
        yield from body.get("results", [])
        url = body.get("next")
        params = None  # the `next` link carries everything


def upload_file(client: ApiClient, path: Path, key: str) -> dict[str, Any]:
    with path.open("rb") as stream:
        progress = Progress(path.name, os.fstat(stream.fileno()).st_size)
        answer: dict[str, Any] = client.request(
            "PUT",
            "/api/v1/artifacts/" + quote(key, safe="/"),
            content=_ProgressReader(stream, progress),  # type: ignore[arg-type]
            timeout=TRANSFER_TIMEOUT,
        )
        progress.finish()
    return answer


def upload(args: argparse.Namespace) -> int:
    source = Path(args.path).expanduser()
    if not source.exists():
        raise CliError(f"{args.path}: no such file or folder", code=2)
    with ApiClient.from_env() as client:
        target = resolve(client, args.uri)
        if source.is_dir():
            files = list(_walk(source))
            if not files:
                raise CliError(f"{args.path}: the folder holds no files", code=2)
            pairs = [(path, f"{target.key}/{relative}") for path, relative in files]
        elif args.uri.endswith("/"):
            pairs = [(source, f"{target.key}/{source.name}")]
        else:
            pairs = [(source, target.key)]
        total = 0
        for path, key in pairs:
            answer = upload_file(client, path, key)
            total += int(answer["size"])
            if not args.quiet:
                print(f"upload: {path} -> {answer['s3_uri']}")
    if not args.quiet:
        print(f"{len(pairs)} file(s), {_size(total)} uploaded to {target.s3_uri}", file=sys.stderr)
    return 0


def download(args: argparse.Namespace) -> int:
    into = Path(args.dir).expanduser()
    with ApiClient.from_env() as client:
        source = resolve(client, args.uri)
        objects = list(listing(client, args.uri))
        if not objects:
            raise CliError(f"{args.uri}: no such object or folder")
        into.mkdir(parents=True, exist_ok=True)
        total = 0
        for item in objects:
            key = str(item["key"])
            # An object named by the URI lands as DIR/<its name>; a folder's objects keep their
            # path below the folder. Keys are checked by the studio (no "..", not absolute).
            named = key == source.key
            relative = key.rsplit("/", 1)[-1] if named else key[len(source.key) + 1 :]
            target = into / relative
            _download_one(client, key, target, int(item["size"]))
            total += int(item["size"])
            if not args.quiet:
                print(f"download: {item['s3_uri']} -> {target}")
    if not args.quiet:
        print(f"{len(objects)} file(s), {_size(total)} downloaded to {into}", file=sys.stderr)
    return 0


def _download_one(client: ApiClient, key: str, target: Path, size: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    progress = Progress(target.name, size)
    # Written beside the target and renamed into place: an interrupted download leaves no
    # truncated file under the real name.
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            path = "/api/v1/artifacts/" + quote(key, safe="/")
            with client.stream(path, timeout=TRANSFER_TIMEOUT) as response:
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    out.write(chunk)
                    progress.advance(len(chunk))
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    finally:
        progress.finish()


def ls(args: argparse.Namespace) -> int:
    with ApiClient.from_env() as client:
        objects = list(listing(client, args.uri))
    if args.json:
        print_json(objects)
        return 0
    print_table(
        ["last modified", "size", "uri"],
        [
            [str(item["last_modified"]).replace("T", " ")[:19], item["size"], item["s3_uri"]]
            for item in objects
        ],
        empty="(nothing there)",
    )
    return 0


def _walk(root: Path) -> Iterator[tuple[Path, str]]:
    """Every file below `root` with its POSIX path relative to it, in a stable order."""
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        for name in sorted(files):
            path = Path(folder) / name
            yield path, path.relative_to(root).as_posix()


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "artifacts", help="upload, download and list a team's artifacts (client command)"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    sub = actions.add_parser(
        "upload",
        help="a file to URI (or to URI/<name> when URI ends with /), or a folder's files below URI",
    )
    sub.add_argument("path", metavar="PATH", help="a local file or folder")
    sub.add_argument("uri", metavar="URI", help="s3://<team bucket>/<key> (see `whoami`)")
    sub.add_argument("--quiet", action="store_true", help="print nothing but errors")
    sub.set_defaults(func=upload)

    sub = actions.add_parser(
        "download", help="the object URI names, or every object under it, into DIR"
    )
    sub.add_argument("uri", metavar="URI", help="s3://<team bucket>/<key or folder>")
    sub.add_argument("dir", metavar="DIR", help="local folder (made when missing)")
    sub.add_argument("--quiet", action="store_true", help="print nothing but errors")
    sub.set_defaults(func=download)

    sub = actions.add_parser("ls", help="the objects under URI with their sizes and times")
    sub.add_argument("uri", metavar="URI", help="s3://<team bucket>/[folder/]")
    sub.add_argument("--json", action="store_true", help="print the objects as JSON")
    sub.set_defaults(func=ls)
