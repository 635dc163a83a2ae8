"""The audit log page: the events of the user's teams, filtered, a page at a time."""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from frontend.access import AuthedRequest
from frontend.audit.forms import AUDIT_PAGE_SIZE, AuditFilterForm
from frontend.forms import encode_cursor, without_cursor
from frontend.teams import user_memberships
from studio.audit.selectors import AuditFilter, audit_events_for_user


@require_GET
def audit(request: AuthedRequest) -> HttpResponse:
    teams = [membership.team for membership in user_memberships(request)]
    form = AuditFilterForm(request.GET or None, teams=teams)
    events: list[Any] = []
    older_url = None
    if not form.is_bound or form.is_valid():
        filters = form.audit_filter() if form.is_bound else AuditFilter()
        # The selector scopes to the user's teams; everything below only narrows it.
        queryset = audit_events_for_user(request.user, filters)
        cursor = form.cleaned_data.get("cursor") if form.is_bound else None
        if cursor is not None:
            # Keyset paging on the table's ordering (-created_at, -id): constant cost at
            # any depth and stable while new events arrive.
            created_at, event_id = cursor
            queryset = queryset.filter(
                Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=event_id)
            )
        events = list(queryset[: AUDIT_PAGE_SIZE + 1])
        if len(events) > AUDIT_PAGE_SIZE:
            events = events[:AUDIT_PAGE_SIZE]
            query = request.GET.copy()
            query["cursor"] = encode_cursor(events[-1].created_at, events[-1].pk)
            older_url = f"?{query.urlencode()}"
    return render(
        request,
        "frontend/audit.html",
        {
            "form": form,
            "events": events,
            "older_url": older_url,
            "paged": bool(request.GET.get("cursor")),
            "newest_url": without_cursor(request),
        },
    )
