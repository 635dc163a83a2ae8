"""Pin the packages registered before packages pinned their artifact.

Each one's archive is read from the artifact store as it is now and its sha256 and size
recorded: from here on, what these packages serve cannot change. (Whatever happened to an
archive before this upgrade cannot be told any more; the audit log has who uploaded what.)
A package whose archive is gone (or whose URI is not in the configured store any more) stays
unpinned, and the registry refuses to deploy it (`package_require_deployable`) until it is
registered again. A store that does not answer stops the upgrade instead (nothing is lost:
run `studiolo migrate` again once it answers), rather than leave every package unpinned for
good. Every archive is read once: with many large models, this migration takes a while.
"""

from __future__ import annotations

import logging

from django.db import migrations

log = logging.getLogger("registry.migrations")


def pin_registered_artifacts(apps, schema_editor):  # type: ignore[no-untyped-def]
    ModelPackage = apps.get_model("registry", "ModelPackage")
    unpinned = ModelPackage.objects.filter(artifact_sha256="")
    if not unpinned.exists():
        return  # a new installation: no store to reach
    from studio.artifacts import get_store
    from studio.artifacts.errors import (
        ArtifactNotFound,
        ArtifactStoreUnavailable,
        InvalidArtifactKey,
    )
    from studio.artifacts.integrity import fingerprint

    store = get_store()
    for package in unpinned.iterator():
        try:
            pin = fingerprint(store, store.key_from_uri(package.artifact_uri))
        except (ArtifactNotFound, InvalidArtifactKey) as exc:
            log.warning(
                "model package %s stays unpinned (it cannot be deployed): %s", package.pk, exc
            )
            continue
        except ArtifactStoreUnavailable as exc:
            raise RuntimeError(
                f"cannot pin the artifacts of registered model packages: {exc}; run the "
                "migration again once the artifact store answers"
            ) from exc
        ModelPackage.objects.filter(pk=package.pk).update(
            artifact_sha256=pin.sha256, artifact_size=pin.size
        )


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0002_package_artifact_pin"),
    ]

    operations = [
        migrations.RunPython(pin_registered_artifacts, migrations.RunPython.noop),
    ]
