"""The left navigation. A later app enables its item by giving it a `url_name`."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse

UNRELEASED_HINT = "Arrives with a later release"


@dataclass(frozen=True)
class NavItem:
    label: str
    icon: str  # name of an icon in frontend/icons.html
    url_name: str | None  # None: the page does not exist yet; shown disabled
    # URL names that highlight this item (its sub-pages)
    section: tuple[str, ...] = ()


@dataclass(frozen=True)
class NavLink:
    label: str
    icon: str
    href: str | None
    active: bool
    hint: str


NAV_ITEMS: tuple[NavItem, ...] = (
    NavItem("Dashboard", "dashboard", "dashboard"),
    NavItem(
        "Experiments",
        "experiments",
        "experiments",
        section=("experiments", "experiment-detail", "run-detail", "runs-compare"),
    ),
    NavItem("Jobs", "jobs", "jobs", section=("jobs", "job-new", "job-detail")),
    NavItem(
        "Models",
        "models",
        "models",
        section=(
            "models",
            "model-review",
            "model-register",
            "model-group",
            "model-package",
            "model-package-deploy",
        ),
    ),
    NavItem(
        "Endpoints",
        "endpoints",
        "endpoints",
        section=("endpoints", "endpoint-detail"),
    ),
    NavItem(
        "Pipelines",
        "pipelines",
        "pipelines",
        section=("pipelines", "pipeline-detail", "pipeline-update", "pipeline-diff"),
    ),
    NavItem("Audit", "audit", "audit"),
    NavItem(
        "Settings", "settings", "settings-tokens", section=("settings-tokens", "settings-team")
    ),
)


def nav_links(current_url_name: str | None) -> list[NavLink]:
    links = []
    for item in NAV_ITEMS:
        href = None
        if item.url_name is not None:
            try:
                href = reverse(item.url_name)
            except NoReverseMatch:  # an app that is not installed: keep the item disabled
                href = None
        active = current_url_name is not None and current_url_name in (
            item.section or (item.url_name,)
        )
        links.append(
            NavLink(
                label=item.label,
                icon=item.icon,
                href=href,
                active=active,
                hint="" if href else UNRELEASED_HINT,
            )
        )
    return links
