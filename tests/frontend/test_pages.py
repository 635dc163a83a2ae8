"""The Studio UI pages: login, dashboard, audit log, tokens, team. Data made through the
services; every page is read as a signed-in member through the test client."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from pytest_django import DjangoAssertNumQueries

from frontend.accounts.views import NEW_TOKEN_SESSION_KEY
from frontend.dashboard import DashboardCard, _providers, dashboard_card
from studio.accounts import services
from studio.accounts.models import ApiToken, Membership, Team
from studio.accounts.roles import Action
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db

PAGES = ["dashboard", "audit", "settings-tokens", "settings-team", "pipelines"]


@pytest.fixture
def team() -> Team:
    return make_team("alpha")


@pytest.fixture
def member(team: Team) -> User:
    return make_user(team, role="scientist", username="ada")


@pytest.fixture
def signed_in(client: Client, member: User) -> Client:
    client.force_login(member)
    return client


def _secret_in(html: str) -> str | None:
    match = re.search(r'value="(stl_[A-Za-z0-9_-]+)"', html)
    return match.group(1) if match else None


# --- login and the shell ---------------------------------------------------------------


@pytest.mark.parametrize("name", PAGES)
def test_anonymous_visitor_is_sent_to_login(client: Client, name: str) -> None:
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(f"{reverse('login')}?next=")


def test_login_page_needs_no_login(client: Client) -> None:
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b"Sign in to Studiolo" in response.content


def test_login_with_the_right_password_lands_on_the_dashboard(client: Client, member: User) -> None:
    response = client.post(
        reverse("login"), {"username": "ada", "password": "pw-for-tests-1"}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("dashboard")
    assert response.status_code == 200
    assert b"data-user-name>ada<" in response.content


def test_login_with_a_wrong_password_shows_an_error(client: Client, member: User) -> None:
    response = client.post(reverse("login"), {"username": "ada", "password": "nope"})
    assert response.status_code == 200
    assert b"form-errors" in response.content
    assert b"enter a correct username and password" in response.content
    assert "_auth_user_id" not in client.session


def test_logout_is_a_post_and_ends_the_session(signed_in: Client) -> None:
    assert signed_in.get(reverse("logout")).status_code == 405
    response = signed_in.post(reverse("logout"))
    assert response.status_code == 302
    assert signed_in.get(reverse("dashboard")).status_code == 302


@pytest.mark.parametrize("name", PAGES)
def test_each_page_renders_for_a_member(signed_in: Client, name: str) -> None:
    response = signed_in.get(reverse(name))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'action="/logout/"' in html
    assert "data-live-dot" in html
    assert 'value="alpha" selected' in html  # the team switcher


@pytest.mark.parametrize("name", PAGES)
def test_each_page_renders_for_a_user_without_a_team(client: Client, name: str) -> None:
    client.force_login(make_user(username="loner"))
    assert client.get(reverse(name)).status_code == 200


def test_unreleased_sections_are_disabled_not_linked(
    signed_in: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from frontend import navigation

    monkeypatch.setattr(
        navigation,
        "NAV_ITEMS",
        (*navigation.NAV_ITEMS, navigation.NavItem("Notebooks", "jobs", None)),
    )
    html = signed_in.get(reverse("dashboard")).content.decode()
    for label in ("Notebooks",):
        item = re.search(rf'<span class="nav-link disabled"[^>]*>.*?<span>{label}</span>', html)
        assert item is not None, label
        assert 'aria-disabled="true"' in item.group(0)
        assert 'title="Arrives with a later release"' in item.group(0)
    for name in (
        "audit",
        "settings-tokens",
        "experiments",
        "jobs",
        "models",
        "endpoints",
        "pipelines",
    ):
        assert f'href="{reverse(name)}"' in html


def test_team_switch_keeps_the_chosen_team_in_the_session(signed_in: Client, member: User) -> None:
    other = make_team("beta")
    services.membership_set(team=other, user=member, role="viewer")
    response = signed_in.post(reverse("team-switch"), {"team": "beta", "next": "/audit/"})
    assert response["Location"] == "/audit/"
    html = signed_in.get(reverse("dashboard")).content.decode()
    assert 'value="beta" selected' in html
    assert "Team <strong>beta</strong>" in html


def test_team_switch_refuses_a_team_of_others(signed_in: Client) -> None:
    make_team("gamma")
    response = signed_in.post(reverse("team-switch"), {"team": "gamma"}, follow=True)
    assert b"not a member of that team" in response.content
    assert b'value="alpha" selected' in response.content


def test_team_switch_does_not_redirect_off_site(signed_in: Client) -> None:
    response = signed_in.post(
        reverse("team-switch"), {"team": "alpha", "next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("dashboard")


# --- dashboard -------------------------------------------------------------------------


def test_dashboard_counts_members_tokens_and_recent_events(
    signed_in: Client, team: Team, member: User
) -> None:
    make_user(team, role="viewer")
    services.token_create(user=member, name="one")
    revoked, _ = services.token_create(user=member, name="two")
    services.token_revoke(token=revoked, actor=member)
    response = signed_in.get(reverse("dashboard"))
    cards = {card.key: card.value for card in response.context["cards"]}
    assert cards["members"] == 2
    assert cards["tokens"] == 1
    # team.created (no actor) is team-scoped too; token events are personal, not the team's
    assert cards["audit-24h"] == 3
    assert b'id="card-members"' in response.content


def test_dashboard_cards_come_from_the_registry(
    signed_in: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("frontend.dashboard._providers", dict(_providers))

    @dashboard_card(order=50)
    def running_jobs(team: Team, user: User) -> DashboardCard:
        return DashboardCard(key="jobs-running", label="Jobs running", value=7)

    @dashboard_card(order=60)
    def hidden(team: Team, user: User) -> None:
        return None

    response = signed_in.get(reverse("dashboard"))
    keys = [card.key for card in response.context["cards"]]
    assert keys == ["members", "tokens", "jobs-active", "jobs-running", "audit-24h"]
    assert b"Jobs running" in response.content


def test_dashboard_activity_lists_the_teams_last_twenty_events(
    signed_in: Client, team: Team, member: User
) -> None:
    for index in range(25):
        make_user(team, role="viewer", username=f"newcomer{index:02d}")
    activity = signed_in.get(reverse("dashboard")).context["activity"]
    assert len(activity) == 20
    assert activity[0].object_repr == "newcomer24 in alpha"


def test_dashboard_never_shows_another_teams_events(
    client: Client, signed_in: Client, team: Team
) -> None:
    theirs = make_team("beta")
    boss = make_user(theirs, role="admin", username="boss")
    services.membership_set(
        team=theirs, user=make_user(username="hushhush"), role="viewer", actor=boss
    )
    response = signed_in.get(reverse("dashboard"))
    assert b"hushhush" not in response.content
    assert b"boss" not in response.content
    assert all(event.team_id == team.pk for event in response.context["activity"])


# --- audit -----------------------------------------------------------------------------


def test_audit_page_shows_only_the_users_teams(signed_in: Client, team: Team) -> None:
    theirs = make_team("beta")
    boss = make_user(theirs, role="admin", username="boss")
    services.membership_set(
        team=theirs, user=make_user(username="hushhush"), role="viewer", actor=boss
    )
    services.membership_set(team=team, user=make_user(username="visible"), role="viewer")
    response = signed_in.get(reverse("audit"))
    assert b"visible in alpha" in response.content
    assert b"hushhush" not in response.content
    assert {event.team_id for event in response.context["events"]} <= {team.pk, None}
    # asking for the other team by name finds nothing, and says why
    response = signed_in.get(reverse("audit"), {"team": "beta"})
    assert response.context["events"] == []
    assert b"hushhush" not in response.content
    assert b"Select a valid choice" in response.content


def test_audit_filters_by_action_prefix_actor_and_type(
    signed_in: Client, team: Team, member: User
) -> None:
    services.token_create(user=member, name="ci", actor=member)
    services.membership_set(team=team, user=make_user(username="bob"), role="viewer", actor=member)
    tokens = signed_in.get(reverse("audit"), {"action": "token."}).context["events"]
    assert [e.action for e in tokens] == ["token.created"]
    by_actor = signed_in.get(reverse("audit"), {"actor": "ada"}).context["events"]
    assert {e.action for e in by_actor} == {"token.created", "membership.added"}
    by_type = signed_in.get(reverse("audit"), {"object_type": "accounts.membership"})
    assert {e.object_type for e in by_type.context["events"]} == {"accounts.membership"}
    in_team = signed_in.get(reverse("audit"), {"team": "alpha"}).context["events"]
    assert {e.team_id for e in in_team} == {team.pk}


def test_audit_filters_by_time(signed_in: Client, member: User) -> None:
    services.token_create(user=member, name="ci")
    assert signed_in.get(reverse("audit"), {"until": "2000-01-01T00:00"}).context["events"] == []
    assert signed_in.get(reverse("audit"), {"since": "2000-01-01T00:00"}).context["events"]


def test_audit_shows_details_compactly_and_escaped(signed_in: Client, member: User) -> None:
    services.token_create(user=member, name="<b>bold</b>")
    html = signed_in.get(reverse("audit")).content.decode()
    compact = '{"name":"&lt;b&gt;bold&lt;/b&gt;","purpose":"api","user":"ada"}'.replace(
        '"', "&quot;"
    )
    assert compact in html
    assert "<b>bold</b>" not in html


def test_audit_pages_older_events_with_a_cursor(signed_in: Client, member: User) -> None:
    for index in range(55):
        services.token_create(user=member, name=f"t{index:02d}")
    first = signed_in.get(reverse("audit"), {"action": "token.created"})
    assert len(first.context["events"]) == 50
    older_url = first.context["older_url"]
    assert older_url is not None
    assert "action=token.created" in older_url
    second = signed_in.get(reverse("audit") + older_url)
    names = [e.details["name"] for e in second.context["events"]]
    assert names == ["t04", "t03", "t02", "t01", "t00"]
    assert second.context["older_url"] is None
    assert b"Newest" in second.content
    seen = {e.pk for e in first.context["events"]} & {e.pk for e in second.context["events"]}
    assert not seen


def test_audit_garbled_cursor_is_a_form_error(signed_in: Client) -> None:
    response = signed_in.get(reverse("audit"), {"cursor": "not-a-cursor!"})
    assert response.status_code == 200
    assert b"no longer valid" in response.content


def _audit_page_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("audit")).status_code == 200
    return len(queries)


def test_audit_page_queries_do_not_grow_with_events(
    signed_in: Client,
    team: Team,
    member: User,
    django_assert_max_num_queries: DjangoAssertNumQueries,
) -> None:
    for _ in range(5):
        services.membership_set(team=team, user=make_user(), role="viewer", actor=member)
    with_five = _audit_page_queries(signed_in)
    assert with_five <= 5  # session, user, memberships, one page of events (+1 spare)
    for _ in range(45):
        services.membership_set(team=team, user=make_user(), role="viewer", actor=member)
    with django_assert_max_num_queries(with_five):
        response = signed_in.get(reverse("audit"))
    assert len(response.context["events"]) == 50


# --- settings: tokens ------------------------------------------------------------------


def test_new_token_secret_is_shown_once(signed_in: Client, member: User) -> None:
    response = signed_in.post(
        reverse("settings-tokens"), {"name": "laptop", "expires_in_days": "30"}
    )
    assert response.status_code == 302
    first = signed_in.get(reverse("settings-tokens"))
    secret = _secret_in(first.content.decode())
    assert secret is not None
    assert first["Cache-Control"] == "no-store"
    assert b"data-copy=" in first.content
    assert services.token_authenticate(secret) == member
    token = ApiToken.objects.get(user=member)
    assert token.expires_at is not None
    assert secret not in str(signed_in.session.items())
    assert NEW_TOKEN_SESSION_KEY not in signed_in.session
    second = signed_in.get(reverse("settings-tokens"))
    assert _secret_in(second.content.decode()) is None
    assert secret.encode() not in second.content
    assert token.prefix.encode() in second.content


def test_token_form_errors_are_shown(signed_in: Client) -> None:
    response = signed_in.post(reverse("settings-tokens"), {"name": "   ", "expires_in_days": "0"})
    assert response.status_code == 400
    assert b"field-error" in response.content
    assert not ApiToken.objects.exists()


def test_token_list_shows_only_own_tokens_with_their_state(signed_in: Client, member: User) -> None:
    services.token_create(user=member, name="mine-active")
    gone, _ = services.token_create(user=member, name="mine-revoked")
    services.token_revoke(token=gone, actor=member)
    services.token_create(user=make_user(username="eve"), name="not-mine")
    html = signed_in.get(reverse("settings-tokens")).content.decode()
    assert "mine-active" in html
    assert "mine-revoked" in html
    assert "not-mine" not in html
    assert 'badge-revoked">revoked' in html
    assert 'badge-active">active' in html


def test_revoking_a_token_through_the_page(signed_in: Client, member: User) -> None:
    token, secret = services.token_create(user=member, name="old")
    response = signed_in.post(reverse("settings-token-revoke", args=[token.pk]), follow=True)
    assert b"revoked" in response.content
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert services.token_authenticate(secret) is None


def test_revoke_is_post_only(signed_in: Client, member: User) -> None:
    token, _ = services.token_create(user=member, name="old")
    assert signed_in.get(reverse("settings-token-revoke", args=[token.pk])).status_code == 405


def test_cannot_revoke_another_users_token(signed_in: Client) -> None:
    token, secret = services.token_create(user=make_user(username="eve"), name="eves")
    response = signed_in.post(reverse("settings-token-revoke", args=[token.pk]), follow=True)
    assert b"does not exist" in response.content
    token.refresh_from_db()
    assert token.revoked_at is None


# --- settings: team --------------------------------------------------------------------


def test_team_page_lists_members_and_the_permission_matrix(signed_in: Client, team: Team) -> None:
    make_user(team, role="approver", username="grace")
    html = signed_in.get(reverse("settings-team")).content.decode()
    assert 'data-member="grace"' in html
    assert 'data-member="ada"' in html
    for action in Action:
        assert f"<code>{action.value}</code>" in html
    assert "Read-only" in html
    assert 'name="op" value="add"' not in html


def test_team_page_shows_the_teams_bucket(signed_in: Client, team: Team) -> None:
    html = signed_in.get(reverse("settings-team")).content.decode()
    assert f"<code data-bucket>s3://studiolo-{team.slug}/</code>" in html


def test_viewer_cannot_add_members(client: Client, team: Team) -> None:
    viewer = make_user(team, role="viewer", username="vera")
    make_user(username="newbie")
    client.force_login(viewer)
    response = client.post(
        reverse("settings-team"), {"op": "add", "username": "newbie", "role": "admin"}
    )
    assert response.status_code == 403
    assert b"does not allow team.manage" in response.content
    assert not Membership.objects.filter(user__username="newbie").exists()


def test_viewer_cannot_change_roles(client: Client, team: Team) -> None:
    viewer = make_user(team, role="viewer", username="vera")
    client.force_login(viewer)
    own = Membership.objects.get(user=viewer)
    response = client.post(
        reverse("settings-team"), {"op": "change", "membership": own.pk, "role": "admin"}
    )
    assert response.status_code == 403
    assert b"does not allow team.manage" in response.content
    own.refresh_from_db()
    assert own.role == "viewer"


def test_admin_adds_an_existing_user_with_a_role(client: Client, team: Team) -> None:
    admin = make_user(team, role="admin", username="root")
    make_user(username="newbie")
    client.force_login(admin)
    page = client.get(reverse("settings-team")).content.decode()
    assert 'name="op" value="add"' in page
    response = client.post(
        reverse("settings-team"),
        {"op": "add", "username": "newbie", "role": "approver"},
        follow=True,
    )
    assert b"newbie added" in response.content
    assert Membership.objects.get(team=team, user__username="newbie").role == "approver"


def test_admin_sees_an_error_for_an_unknown_username(client: Client, team: Team) -> None:
    client.force_login(make_user(team, role="admin", username="root"))
    response = client.post(
        reverse("settings-team"), {"op": "add", "username": "ghost", "role": "viewer"}
    )
    assert response.status_code == 404
    assert b"no user named" in response.content


def test_admin_changes_a_role(client: Client, team: Team, member: User) -> None:
    client.force_login(make_user(team, role="admin", username="root"))
    membership = Membership.objects.get(user=member)
    client.post(
        reverse("settings-team"), {"op": "change", "membership": membership.pk, "role": "approver"}
    )
    membership.refresh_from_db()
    assert membership.role == "approver"


def test_admin_cannot_change_a_member_of_another_team(client: Client, team: Team) -> None:
    client.force_login(make_user(team, role="admin", username="root"))
    outsider = make_user(make_team("beta"), role="viewer")
    membership = Membership.objects.get(user=outsider)
    response = client.post(
        reverse("settings-team"), {"op": "change", "membership": membership.pk, "role": "admin"}
    )
    assert response.status_code == 404
    membership.refresh_from_db()
    assert membership.role == "viewer"


# --- what a page may offer ---------------------------------------------------------------


def test_pages_ask_the_permission_service_from_the_memberships_they_read_once(
    rf: RequestFactory, team: Team, member: User
) -> None:
    from frontend.access import allows
    from frontend.teams import user_memberships

    other = make_team()
    request = rf.get("/")
    request.user = member
    user_memberships(request)  # the top bar reads them on every page
    fresh_team = Team.objects.get(pk=team.pk)  # an instance no selector noted a role on
    with CaptureQueriesContext(connection) as queries:
        assert allows(request, fresh_team, Action.SUBMIT_JOB)
        assert not allows(request, fresh_team, Action.APPROVE_MODEL)
        assert not allows(request, other, Action.VIEW)
        assert not allows(request, None, Action.VIEW)
    assert queries.captured_queries == []
