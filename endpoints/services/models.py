"""Serving models and endpoint configs: what may be deployed, checked once, here.

A model made from a package copies the package's image, artifact and entry point (the
package never changes, so neither does the model). The registry's policy decides whether a
package may be deployed (`registry.services.approval.package_require_deployable`); it is asked
when the model is made and again whenever a config or endpoint would start serving it, so a
package rejected in between cannot slip through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import IntegrityError, transaction

from compute.instance_types import instance_type_get
from compute.runtime import get_runtime
from compute.runtime.base import ENV_KEY
from compute.serving import ServingSource
from endpoints.models import EndpointConfig, ProductionVariant, ServingModel
from registry.models import ModelPackage
from registry.services.approval import package_require_deployable
from registry.services.artifacts import package_pin
from studio.accounts.models import Team
from studio.accounts.roles import Action
from studio.accounts.services import require_permission
from studio.artifacts import get_store
from studio.artifacts.buckets import key_for_uri
from studio.audit.services import audit_record
from studio.errors import NotFound, ValidationError
from studio.names import NAME_RULE, is_name

Actor = AbstractBaseUser | AnonymousUser | None

MAX_VARIANTS = 10
MAX_INSTANCES = 10  # per variant; a local fleet, not a cloud
MAX_ENV = 100


def check_name(name: str, field_name: str = "name") -> str:
    # SageMaker's name rule for models, configs, endpoints and variants.
    if not is_name(name):
        raise ValidationError(f"{field_name}: {NAME_RULE}", field=field_name)
    return name


def package_from_ref(*, team: Team, ref: str, field_name: str = "model") -> ModelPackage:
    """`GROUP/VERSION` (e.g. `churn/3`) in the team's registry."""
    group, _, version = (ref or "").strip().rpartition("/")
    if not group or not version.isdigit():
        raise ValidationError(
            f"{field_name}: expected GROUP/VERSION like churn/3, got {ref!r}", field=field_name
        )
    package = (
        ModelPackage.objects.select_related("group__team")
        .filter(group__team=team, group__name=group, version=int(version))
        .first()
    )
    if package is None:
        raise NotFound(f"{field_name}: model package {ref} not found", field=field_name)
    return package


def serving_source(model: ServingModel) -> ServingSource:
    """What the fleet serves for `model`; a model made from a package carries the package's
    pin, which its archive is checked against when it is staged."""
    environment = dict(model.environment)
    program = environment.pop("SAGEMAKER_PROGRAM", "")
    package = model.package
    return ServingSource(
        image=model.image,
        artifact_uri=model.artifact_uri,
        environment=environment,
        program=program,
        pin=package_pin(package) if package is not None else None,
        pinned_by=f"package {package}" if package is not None else "",
    )


def model_require_deployable(model: ServingModel) -> None:
    """Models made from packages obey the registry's policy; admins' image models do not
    come from the registry (making one needs the admin role in the first place)."""
    if model.package is not None:
        package_require_deployable(model.package)


def _environment(raw: Mapping[str, object] | None) -> dict[str, str]:
    environment: dict[str, str] = {}
    for key, value in (raw or {}).items():
        if not isinstance(key, str) or not ENV_KEY.match(key):
            raise ValidationError(
                f"environment: {key!r} is not a valid variable name", field="environment"
            )
        if not isinstance(value, str | int | float | bool):
            raise ValidationError(f"environment: {key} must be a string", field="environment")
        environment[key] = str(value)
    if len(environment) > MAX_ENV:
        raise ValidationError(f"environment: at most {MAX_ENV} variables", field="environment")
    return environment


def _create_model(*, team: Team, actor: Actor, name: str, **fields: object) -> ServingModel:
    try:
        with transaction.atomic():
            model = ServingModel.objects.create(
                team=team,
                name=name,
                created_by=actor if isinstance(actor, User) else None,
                **fields,
            )
            audit_record(
                actor=actor,
                action="serving_model.created",
                target=model,
                team=team,
                details={
                    "image": model.image,
                    "artifact_uri": model.artifact_uri,
                    "package": str(model.package) if model.package else None,
                },
            )
    except IntegrityError:
        raise ValidationError(
            f"name: a model named {name!r} exists already", field="name"
        ) from None
    return model


def model_create_from_package(
    *,
    team: Team,
    actor: Actor,
    name: str,
    package: ModelPackage,
    environment: Mapping[str, object] | None = None,
) -> ServingModel:
    require_permission(user=actor, team=team, action=Action.DEPLOY)
    check_name(name)
    if package.group.team_id != team.pk:
        raise NotFound(f"model: model package {package} not found", field="model")
    package_require_deployable(package)
    env = _environment(environment)
    if package.entry_point:
        env.setdefault("SAGEMAKER_PROGRAM", package.entry_point)
    return _create_model(
        team=team,
        actor=actor,
        name=name,
        package=package,
        image=package.image,
        artifact_uri=package.artifact_uri,
        environment=env,
    )


def model_create_from_image(
    *,
    team: Team,
    actor: Actor,
    name: str,
    image: str,
    artifact_uri: str,
    environment: Mapping[str, object] | None = None,
) -> ServingModel:
    """An image and an artifact that never went through the registry: admins only."""
    require_permission(user=actor, team=team, action=Action.MANAGE_TEAM)
    check_name(name)
    if not image:
        raise ValidationError("image: required for a model without a package", field="image")
    if not get_runtime().image_exists(image):
        raise ValidationError(
            f"image: image {image!r} does not exist on the container engine", field="image"
        )
    store = get_store()
    key = key_for_uri(store, artifact_uri, team, field="artifact_uri")
    if not store.exists(key):
        raise ValidationError(f"artifact_uri: {artifact_uri} does not exist", field="artifact_uri")
    return _create_model(
        team=team,
        actor=actor,
        name=name,
        image=image,
        # The store's own URI, whichever form was given: what staging reads it back with.
        artifact_uri=store.uri(key),
        environment=_environment(environment),
    )


def model_for_package(*, team: Team, actor: Actor, package: ModelPackage) -> ServingModel:
    """The model the shortcuts (`--model GROUP/VERSION`) use: one per package, made once."""
    existing = ServingModel.objects.filter(team=team, package=package).order_by("pk").first()
    if existing is not None:
        require_permission(user=actor, team=team, action=Action.DEPLOY)
        package_require_deployable(package)
        return existing
    name = f"{package.group.name}-v{package.version}"[:63].strip("-")
    if ServingModel.objects.filter(team=team, name=name).exists():
        name = f"{name[:50]}-p{package.pk}"
    return model_create_from_package(team=team, actor=actor, name=name, package=package)


@dataclass(frozen=True)
class VariantRequest:
    model: ServingModel
    name: str = "AllTraffic"  # SageMaker SDK's default variant name
    instance_type: str = "ml.local.small"
    instance_count: int = 1
    initial_weight: float = 1.0


def config_create(
    *, team: Team, actor: Actor, name: str, variants: Sequence[VariantRequest]
) -> EndpointConfig:
    require_permission(user=actor, team=team, action=Action.DEPLOY)
    check_name(name)
    if not variants:
        raise ValidationError("variants: give at least one production variant", field="variants")
    if len(variants) > MAX_VARIANTS:
        raise ValidationError(f"variants: at most {MAX_VARIANTS}", field="variants")
    seen: set[str] = set()
    for variant in variants:
        check_name(variant.name, "variants.name")
        if variant.name in seen:
            raise ValidationError(
                f"variants.name: {variant.name!r} appears twice", field="variants.name"
            )
        seen.add(variant.name)
        if variant.model.team_id != team.pk:
            raise NotFound(
                f"variants.model: model {variant.model} not found", field="variants.model"
            )
        model_require_deployable(variant.model)
        try:
            instance_type_get(variant.instance_type)
        except ValidationError as exc:
            raise ValidationError(exc.message, field="variants.instance_type") from exc
        if not 1 <= variant.instance_count <= MAX_INSTANCES:
            raise ValidationError(
                f"variants.instance_count: between 1 and {MAX_INSTANCES}",
                field="variants.instance_count",
            )
        if not 0 <= variant.initial_weight <= 1000:
            raise ValidationError(
                "variants.initial_weight: between 0 and 1000", field="variants.initial_weight"
            )
    if sum(variant.initial_weight for variant in variants) <= 0:
        raise ValidationError(
            "variants.initial_weight: at least one variant must have a weight above 0",
            field="variants.initial_weight",
        )
    try:
        with transaction.atomic():
            config = EndpointConfig.objects.create(
                team=team,
                name=name,
                created_by=actor if isinstance(actor, User) else None,
            )
            ProductionVariant.objects.bulk_create(
                ProductionVariant(
                    config=config,
                    name=variant.name,
                    model=variant.model,
                    instance_type=variant.instance_type,
                    instance_count=variant.instance_count,
                    initial_weight=variant.initial_weight,
                )
                for variant in variants
            )
            audit_record(
                actor=actor,
                action="endpoint_config.created",
                target=config,
                team=team,
                details={
                    "variants": [
                        {
                            "name": v.name,
                            "model": v.model.name,
                            "instance_type": v.instance_type,
                            "instance_count": v.instance_count,
                            "initial_weight": v.initial_weight,
                        }
                        for v in variants
                    ]
                },
            )
    except IntegrityError:
        raise ValidationError(
            f"name: an endpoint config named {name!r} exists already", field="name"
        ) from None
    return config


def config_require_deployable(config: EndpointConfig) -> None:
    for variant in config.variants.select_related("model__package__group"):
        model_require_deployable(variant.model)


def next_config_name(*, team: Team, endpoint_name: str) -> str:
    """`<endpoint>-config-<n>` with the first free n: how the shortcuts name their configs."""
    prefix = f"{endpoint_name}-config-"
    taken = set(
        EndpointConfig.objects.filter(team=team, name__startswith=prefix).values_list(
            "name", flat=True
        )
    )
    number = 1
    while f"{prefix}{number}"[:63] in taken:
        number += 1
    return f"{prefix}{number}"[:63]


def config_create_for_model(
    *,
    team: Team,
    actor: Actor,
    endpoint_name: str,
    model: ServingModel,
    instance_type: str,
    instance_count: int,
) -> EndpointConfig:
    """The shortcut behind `--model GROUP/VERSION --instances N`: one variant, AllTraffic."""
    return config_create(
        team=team,
        actor=actor,
        name=next_config_name(team=team, endpoint_name=endpoint_name),
        variants=[
            VariantRequest(model=model, instance_type=instance_type, instance_count=instance_count)
        ],
    )
