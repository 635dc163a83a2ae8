"""Drop the answer bodies earlier versions kept in the delivery log.

Before the URL policy, a failed attempt's log kept up to 500 bytes of whatever the receiver
answered, and a receiver could be an internal server. Which rows came from such a server is
not known any more, so every kept body goes; the status code stays ("HTTP 404: <body>" becomes
"HTTP 404", with " (redirects are not followed)" kept where it was said).
"""

from __future__ import annotations

import re
from typing import Any

from django.db import migrations

_WITH_BODY = re.compile(r"^(HTTP \d{3}): .*?((?: \(redirects are not followed\))?)$", re.DOTALL)
_BATCH = 500


def _forget(model: Any, field: str) -> None:
    rows = model.objects.filter(**{f"{field}__regex": r"^HTTP [0-9]{3}: "}).only("pk", field)
    for row in rows.iterator(chunk_size=_BATCH):
        match = _WITH_BODY.match(getattr(row, field))
        if match is not None:
            model.objects.filter(pk=row.pk).update(**{field: match.group(1) + match.group(2)})


def forget_response_bodies(apps: Any, schema_editor: Any) -> None:
    _forget(apps.get_model("webhooks", "WebhookAttempt"), "error")
    _forget(apps.get_model("webhooks", "WebhookDelivery"), "last_error")


class Migration(migrations.Migration):
    dependencies = [("webhooks", "0001_initial")]

    operations = [
        migrations.RunPython(forget_response_bodies, migrations.RunPython.noop, elidable=True)
    ]
