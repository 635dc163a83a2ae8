"""Configuration comes from the environment; a bad value is one clear line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.config import SETTINGS_DOC, ConfigError, celery_broker_url, load_config


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"STUDIOLO_HOME": str(tmp_path / "home"), **values}


def test_defaults_are_the_embedded_ones(tmp_path: Path) -> None:
    config = load_config(env(tmp_path))
    home = tmp_path / "home"
    assert config.database["ENGINE"] == "django.db.backends.sqlite3"
    assert config.database["NAME"] == str(home / "studiolo.sqlite3")
    assert config.redis_embedded is True
    assert config.redis_url == f"unix://{home}/run/redis.sock"
    assert config.artifact_store == str(home / "artifacts")
    assert config.runtime == "auto"
    assert config.debug is False
    assert config.allowed_hosts == ["localhost", "127.0.0.1", "[::1]"]


def test_generated_secret_key_is_kept_in_the_data_folder(tmp_path: Path) -> None:
    first = load_config(env(tmp_path)).secret_key
    second = load_config(env(tmp_path)).secret_key
    assert first == second
    assert len(first) >= 50
    assert (tmp_path / "home" / "secret-key").stat().st_mode & 0o077 == 0


def test_postgres_url_is_parsed(tmp_path: Path) -> None:
    config = load_config(env(tmp_path, DATABASE_URL="postgres://postgres@127.0.0.1:5432/test"))
    assert config.database["ENGINE"] == "django.db.backends.postgresql"
    assert config.database["NAME"] == "test"
    assert config.database["HOST"] == "127.0.0.1"


def test_s3_artifact_store_and_external_redis(tmp_path: Path) -> None:
    config = load_config(
        env(
            tmp_path,
            ARTIFACT_STORE="s3://bucket/prefix",
            REDIS_URL="redis://127.0.0.1:6379/2",
            S3_ENDPOINT_URL="http://127.0.0.1:9000",
        )
    )
    assert config.artifact_store == "s3://bucket/prefix"
    assert config.redis_embedded is False
    assert config.s3_endpoint_url == "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://root@localhost/db"),
        ("DATABASE_URL", "sqlite://"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("REDIS_URL", "redis://"),
        ("ARTIFACT_STORE", "ftp://host/x"),
        ("ARTIFACT_STORE", "relative/folder"),
        ("ARTIFACT_STORE", "s3://"),
        ("RUNTIME", "kubernetes"),
        ("DEBUG", "maybe"),
        ("SECRET_KEY", "short"),
        ("LOG_LEVEL", "LOUD"),
        ("S3_ENDPOINT_URL", "127.0.0.1:9000"),
        ("CSRF_TRUSTED_ORIGINS", "studio.example.org"),
        ("INSTANCE_TYPES", "{not json"),
        ("INSTANCE_TYPES", '{"ml.x": {"cpus": 0, "memory_mb": 1024}}'),
        ("INSTANCE_TYPES", '{"ml.x": {"cpus": 1, "memory_mb": "lots"}}'),
        ("INSTANCE_TYPES", '{"Bad Name": {"cpus": 1, "memory_mb": 1024}}'),
        ("JOBS_WORK_DIR", "relative/work"),
        ("JOB_STOP_GRACE_SECONDS", "soon"),
        ("JOB_STOP_GRACE_SECONDS", "-1"),
        ("ENDPOINT_NETWORK", "host"),  # would serve on every interface of the machine
        ("ENDPOINT_NETWORK", "none"),
        ("ENDPOINT_NETWORK", "container:abc"),
        ("TRACKING_RETENTION_DAYS", "a month"),
        ("TRACKING_RETENTION_DAYS", "-1"),
        ("WEBHOOK_ALLOWED_HOSTS", "hooks.corp,not a host"),
        ("WEBHOOK_ALLOWED_HOSTS", "http://hooks.corp"),
        ("CONTAINER_PIDS_LIMIT", "10"),
        ("CONTAINER_PIDS_LIMIT", "unlimited"),
        ("CONTAINER_TMP_PERCENT", "0"),
        ("CONTAINER_TMP_PERCENT", "150"),
        ("SEARCH_TIMEOUT_SECONDS", "0"),
        ("SEARCH_TIMEOUT_SECONDS", "forever"),
        ("SEARCH_MAX_PATTERN_LENGTH", "0"),
    ],
)
def test_bad_value_names_the_variable_in_one_line(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(env(tmp_path, **{name: value}))
    message = str(error.value)
    assert message.startswith(f"{name}: ")
    assert "\n" not in message


def test_serving_containers_publish_on_loopback_unless_a_network_is_named(tmp_path: Path) -> None:
    assert load_config(env(tmp_path)).endpoint_network == ""
    named = load_config(env(tmp_path, ENDPOINT_NETWORK=" studiolo-serving "))
    assert named.endpoint_network == "studiolo-serving"


def test_webhooks_allow_no_internal_target_unless_listed(tmp_path: Path) -> None:
    assert load_config(env(tmp_path)).webhook_allowed_hosts == ()
    listed = load_config(
        env(tmp_path, WEBHOOK_ALLOWED_HOSTS="Hooks.Corp.Example., 10.20.3.4/16, 127.0.0.1, ::1")
    )
    assert listed.webhook_allowed_hosts == (
        "hooks.corp.example",
        "10.20.0.0/16",
        "127.0.0.1/32",
        "::1/128",
    )


def test_containers_get_a_pid_limit_and_a_tmp_sized_from_their_memory(tmp_path: Path) -> None:
    config = load_config(env(tmp_path))
    assert (config.container_pids_limit, config.container_tmp_percent) == (4096, 50)
    config = load_config(env(tmp_path, CONTAINER_PIDS_LIMIT="512", CONTAINER_TMP_PERCENT="10"))
    assert (config.container_pids_limit, config.container_tmp_percent) == (512, 10)


def test_deleted_tracking_data_is_kept_30_days_unless_said_otherwise(tmp_path: Path) -> None:
    assert load_config(env(tmp_path)).tracking_retention_days == 30
    assert load_config(env(tmp_path, TRACKING_RETENTION_DAYS="0")).tracking_retention_days == 0


def test_home_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "home").write_text("not a folder")
    with pytest.raises(ConfigError, match="^STUDIOLO_HOME: "):
        load_config(env(tmp_path))


def test_unix_socket_redis_is_spelled_for_kombu() -> None:
    assert celery_broker_url("unix:///tmp/x/redis.sock") == "redis+socket:///tmp/x/redis.sock"
    assert celery_broker_url("redis://h:6379/1") == "redis://h:6379/1"


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [name for name in SETTINGS_DOC if f"`{name}`" not in readme]
    assert missing == []
