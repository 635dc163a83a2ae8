"""`/ws/events`: live events of every team the user belongs to, while they belong to it."""

from __future__ import annotations

from typing import Any

from studio.accounts.consumers import GrantedConsumer
from studio.accounts.selectors import teams_for_user
from studio.events import team_group


class TeamEventsConsumer(GrantedConsumer):
    team_groups: dict[str, str]  # group -> team slug, of the teams the user is in

    def connect(self) -> None:
        if not self.authorise():
            return
        self.team_groups = {}
        self._follow_teams()
        self.accept()

    def rights_changed(self) -> None:
        # A membership added or removed (studio.accounts.services sends a recheck).
        self._follow_teams()

    def team_event(self, message: dict[str, Any]) -> None:
        # Events of a team the user has just left may still be queued for this socket; the
        # team is checked against the current memberships (known here, no query).
        if message.get("team") in self.team_groups.values():
            self.send_json({key: value for key, value in message.items() if key != "type"})

    def _follow_teams(self) -> None:
        teams = {
            team_group(pk): slug
            for pk, slug in teams_for_user(self.scope["user"]).values_list("pk", "slug")
        }
        self.leave([group for group in self.team_groups if group not in teams])
        self.join([group for group in teams if group not in self.team_groups])
        self.team_groups = teams
