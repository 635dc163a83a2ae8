"""Pin the packages registered before packages pinned their artifact.

Each one's archive is read from the artifact store as it is now and its sha256 and size
recorded: from here on, what these packages serve cannot change. (Whatever happened to an
archive before this upgrade cannot be told any more; the audit log has who uploaded what.)
A package whose archive cannot be read (gone, or the store unreachable) stays unpinned, and
the registry refuses to deploy it (`package_require_deployable`) until it is registered again.
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
    from studio.artifacts.errors import ArtifactStoreError
    from studio.artifacts.integrity import fingerprint

    store = get_store()
    for package in unpinned.iterator():
        try:
            pin = fingerprint(store, store.key_from_uri(package.artifact_uri))
        except ArtifactStoreError as exc:
            log.warning(
                "model package %s stays unpinned (it cannot be deployed): %s", package.pk, exc
            )
            continue
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
