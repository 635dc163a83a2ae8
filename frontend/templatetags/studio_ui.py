"""Small template helpers for the Studio UI."""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.templatetags.static import static
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


@register.simple_tag
def icon(name: str) -> SafeString:
    """An icon from the first-party sprite `frontend/icons.svg`; colour follows the text."""
    return format_html(
        '<svg class="icon" width="18" height="18" fill="none" stroke="currentColor" '
        'stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" '
        'focusable="false"><use href="{}#{}"></use></svg>',
        static("frontend/icons.svg"),
        name,
    )


@register.filter
def compact_json(value: Any) -> str:
    """`{"a":1,"b":"x"}` on one line; autoescaping still applies to the result."""
    if value in (None, {}, []):
        return ""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=str)
