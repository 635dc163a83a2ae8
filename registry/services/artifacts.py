"""A package's artifact: pinned by content at registration, protected from users' writes.

Approval is of content, not of a name in the store: registration reads the archive once and
records its sha256 and size, every consumer checks them while it downloads
(`studio.artifacts.integrity`), and users cannot overwrite a key any package pinned
(`package_artifact_write_refusal`, registered with the artifact store in RegistryConfig.ready).
"""

from __future__ import annotations

from registry.models import ModelPackage
from studio.artifacts import ArtifactNotFound, get_store
from studio.artifacts.integrity import ArtifactPin, artifact_label, fingerprint
from studio.errors import ValidationError


def artifact_pin_read(key: str, *, field: str) -> ArtifactPin:
    """Stream the artifact at `key` and return its pin; a missing one is a 400 on `field`."""
    store = get_store()
    try:
        return fingerprint(store, key)
    except ArtifactNotFound:
        raise ValidationError(
            f"{field}: {artifact_label(store, key)} does not exist", field=field
        ) from None


def package_pin(package: ModelPackage) -> ArtifactPin | None:
    """The content the package was registered with; None for an unpinned legacy package."""
    if not package.artifact_sha256 or package.artifact_size is None:
        return None
    return ArtifactPin(sha256=package.artifact_sha256, size=package.artifact_size)


def package_artifact_write_refusal(key: str) -> str | None:
    """Why users may not write `key`: it is the artifact of a registered package."""
    package = (
        ModelPackage.objects.filter(artifact_uri=get_store().uri(key))
        .select_related("group")
        .order_by("pk")
        .first()
    )
    if package is None:
        return None
    return (
        f"it is the artifact of model package {package}, pinned at its registration; "
        "upload a new archive under another key and register it"
    )
