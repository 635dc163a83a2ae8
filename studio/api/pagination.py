from __future__ import annotations

from rest_framework import pagination


class CursorPagination(pagination.CursorPagination):
    """Cursor paging: stable under inserts and O(page) on large tables."""

    page_size_query_param = "limit"
    max_page_size = 500
    ordering = "-created_at"
