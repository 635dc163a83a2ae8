# Step 2 of 3: fill the new columns of existing rows. Datetimes become milliseconds since the
# epoch, each run gets its public 32-hex id, and runs that jobs point at are marked as such.

import uuid

from django.db import migrations

_MS_SQL = {
    "postgresql": "CAST(ROUND(EXTRACT(EPOCH FROM {column}) * 1000) AS BIGINT)",
    "sqlite": "CAST(ROUND((julianday({column}) - 2440587.5) * 86400000.0) AS INTEGER)",
}


def _to_ms(schema_editor, table: str, target: str, source: str) -> None:
    connection = schema_editor.connection
    quote = connection.ops.quote_name
    expression = _MS_SQL.get(connection.vendor)
    if expression is not None:
        sql = (
            f"UPDATE {quote(table)} SET {quote(target)} = {expression.format(column=quote(source))}"  # noqa: S608 - identifiers are this migration's own
            f" WHERE {quote(source)} IS NOT NULL"
        )
        schema_editor.execute(sql)
        return
    with connection.cursor() as cursor:  # any other database: row by row
        cursor.execute(f"SELECT id, {quote(source)} FROM {quote(table)}")  # noqa: S608 - identifiers are this migration's own
        for pk, value in cursor.fetchall():
            if value is not None:
                schema_editor.execute(
                    f"UPDATE {quote(table)} SET {quote(target)} = %s WHERE id = %s",  # noqa: S608 - identifiers are this migration's own
                    [round(value.timestamp() * 1000), pk],
                )


def forward(apps, schema_editor):
    Run = apps.get_model("experiments", "Run")
    for run in Run.objects.filter(run_uuid__isnull=True).only("pk").iterator():
        Run.objects.filter(pk=run.pk).update(run_uuid=uuid.uuid4().hex)
    _to_ms(schema_editor, "experiments_run", "start_time", "started_at")
    _to_ms(schema_editor, "experiments_run", "end_time", "ended_at")
    _to_ms(schema_editor, "experiments_metricpoint", "timestamp_ms", "timestamp")
    _to_ms(schema_editor, "experiments_metricsummary", "last_timestamp_ms", "last_timestamp")
    if "jobs_job" in schema_editor.connection.introspection.table_names():
        schema_editor.execute(
            "UPDATE experiments_run SET source = 'job' WHERE id IN "
            "(SELECT run_id FROM jobs_job WHERE run_id IS NOT NULL)"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("experiments", "0002_tracking_fields"),
    ]

    operations = [
        migrations.RunPython(forward, migrations.RunPython.noop),
    ]
