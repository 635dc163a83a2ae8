"""Serve third-party browser assets from the Python packages that ship them.

Nothing is fetched from a CDN at run time. The full plotly.js (`vendor/plotly.min.js`) comes
from the installed `plotly` package, so its version moves with the locked dependency. The one
asset no Python package ships, plotly.js's basic partial bundle (`vendor/plotly-basic.min.js`,
for pages that only draw lines and bars), is committed under `frontend/static/vendor/` at the
same plotly.js version; its README says where it came from.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any, Literal, overload

from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

# static path -> (package, file inside the package)
PACKAGE_ASSETS: dict[str, tuple[str, str]] = {
    "vendor/plotly.min.js": ("plotly", "package_data/plotly.min.js"),
}


def _asset_path(package: str, inner: str) -> Path:
    return Path(str(resources.files(package).joinpath(inner)))


class PackageAssetFinder(BaseFinder):
    def check(self, **kwargs: Any) -> list[Any]:
        return []

    @overload
    def find(self, path: str, find_all: Literal[False] = False, **kwargs: Any) -> str | None: ...

    @overload
    def find(self, path: str, find_all: Literal[True], **kwargs: Any) -> list[str]: ...

    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> str | list[str] | None:
        if path in PACKAGE_ASSETS:
            found = str(_asset_path(*PACKAGE_ASSETS[path]))
            return [found] if find_all else found
        return [] if find_all else ""

    def list(self, ignore_patterns: Any) -> Iterator[tuple[str, FileSystemStorage]]:
        for static_path, (package, inner) in PACKAGE_ASSETS.items():
            source = _asset_path(package, inner)
            storage = FileSystemStorage(location=str(source.parent))
            storage.prefix = str(Path(static_path).parent)  # type: ignore[attr-defined]
            yield source.name, storage
