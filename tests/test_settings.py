"""server/settings.py: defaults, then SOCIALGRAPH_* environment variables,
then command-line flags."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from server import settings as config
from server.settings import Settings, load

README = Path(__file__).resolve().parent.parent / "README.md"
# Every command some setting applies to (serve, migrate, recount, health, ...).
COMMANDS = tuple(sorted({c for f in dataclasses.fields(Settings) for c in f.metadata["commands"]}))


def parse(command: str, *flags: str) -> argparse.Namespace:
    """The namespace the ``socialgraph`` command line would hand to ``load``."""
    parser = argparse.ArgumentParser(prog="socialgraph")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        config.add_arguments(sub.add_parser(name), name)
    return parser.parse_args([command, *flags])


def test_defaults_without_environment_or_flags():
    settings = load(None, environ={})
    assert settings == Settings()
    assert settings.listen == "127.0.0.1:50051"
    assert settings.database_url == "sqlite:///./socialgraph.db"
    assert settings.redis_url == ""
    assert settings.log_level == "INFO"
    assert settings.connection_limit == 2000
    assert settings.auto_follow is True
    assert settings.rate_limits == "20/1h,100/24h"
    assert settings.threads == 32
    assert settings.grace_period == 10.0
    assert settings.max_message_bytes == 4 * 1024 * 1024
    assert settings.health_interval == 2.0
    assert settings.migrate_on_start is True
    assert [(w.limit, w.seconds) for w in settings.windows] == [(20, 3600), (100, 86400)]


def test_defaults_with_parsed_but_empty_command_line():
    for command in COMMANDS:
        assert load(parse(command), environ={}) == Settings()


def test_unrelated_environment_variables_are_ignored():
    environ = {"PATH": "/bin", "LISTEN": "0.0.0.0:1", "SOCIALGRAPHLISTEN": "x", "socialgraph_listen": "x"}
    assert load(None, environ=environ) == Settings()


def test_environment_overrides_defaults():
    environ = {
        "SOCIALGRAPH_LISTEN": "127.0.0.1:6000",
        "SOCIALGRAPH_DATABASE_URL": "sqlite:////tmp/x.db",
        "SOCIALGRAPH_REDIS_URL": "redis://127.0.0.1:6379/1",
        "SOCIALGRAPH_LOG_LEVEL": "DEBUG",
        "SOCIALGRAPH_CONNECTION_LIMIT": "7",
        "SOCIALGRAPH_AUTO_FOLLOW": "false",
        "SOCIALGRAPH_RATE_LIMITS": "3/1m",
        "SOCIALGRAPH_THREADS": "4",
        "SOCIALGRAPH_GRACE_PERIOD": "2.5",
        "SOCIALGRAPH_MAX_MESSAGE_BYTES": "1024",
        "SOCIALGRAPH_HEALTH_INTERVAL": "0.5",
        "SOCIALGRAPH_MIGRATE_ON_START": "0",
    }
    settings = load(None, environ=environ)
    assert settings == Settings(
        listen="127.0.0.1:6000",
        database_url="sqlite:////tmp/x.db",
        redis_url="redis://127.0.0.1:6379/1",
        log_level="DEBUG",
        connection_limit=7,
        auto_follow=False,
        rate_limits="3/1m",
        threads=4,
        grace_period=2.5,
        max_message_bytes=1024,
        health_interval=0.5,
        migrate_on_start=False,
    )
    # Typed, not left as strings.
    assert isinstance(settings.connection_limit, int)
    assert isinstance(settings.grace_period, float)
    assert settings.auto_follow is False
    # The same through a parsed (flag-less) command line.
    assert load(parse("serve"), environ=environ) == settings


# Settings that are only valid beside others.
_TLS = {"SOCIALGRAPH_TLS_CERT": "cert.pem", "SOCIALGRAPH_TLS_KEY": "key.pem"}
COMPANIONS = {
    "tls_cert": _TLS,
    "tls_key": _TLS,
    "tls_client_ca": _TLS,
    "tls_client_scopes": {**_TLS, "SOCIALGRAPH_TLS_CLIENT_CA": "ca.pem"},
    "auth_jwt_keys": {"SOCIALGRAPH_AUTH_JWT_ISSUER": "issuer", "SOCIALGRAPH_AUTH_JWT_AUDIENCE": "socialgraph"},
}


def test_every_field_can_be_set_through_its_environment_variable():
    samples = {bool: ("false", False), int: ("3", 3), float: ("1.5", 1.5)}
    for f in dataclasses.fields(Settings):
        text, value = {"trace_sample_ratio": ("0.5", 0.5)}.get(f.name) or samples.get(type(f.default), (None, None))
        if text is None:
            text = value = {
                "listen": "127.0.0.1:7",
                "rate_limits": "5/1s",
                "log_level": "DEBUG",
                "database_url": "sqlite:///elsewhere.db",
                "redis_url": "redis://127.0.0.1:6390/0",
                "metrics_listen": "127.0.0.1:9464",
                "admin_listen": "127.0.0.1:8",
                "tls_client_scopes": "admin.internal=admin",
                "log_format": "json",
                "trace_exporter": "console",
            }.get(f.name, "some-value")
        settings = load(None, environ={**COMPANIONS.get(f.name, {}), f"SOCIALGRAPH_{f.name.upper()}": text})
        assert getattr(settings, f.name) == value, f.name


def test_flags_override_environment():
    environ = {
        "SOCIALGRAPH_LISTEN": "127.0.0.1:6000",
        "SOCIALGRAPH_CONNECTION_LIMIT": "7",
        "SOCIALGRAPH_AUTO_FOLLOW": "false",
        "SOCIALGRAPH_GRACE_PERIOD": "2.5",
        "SOCIALGRAPH_RATE_LIMITS": "3/1m",
        "SOCIALGRAPH_THREADS": "4",
    }
    args = parse(
        "serve",
        "--listen", "127.0.0.1:7000",
        "--connection-limit", "9",
        "--auto-follow", "yes",
        "--grace-period", "0.25",
    )
    settings = load(args, environ=environ)
    assert settings.listen == "127.0.0.1:7000"
    assert settings.connection_limit == 9
    assert settings.auto_follow is True
    assert settings.grace_period == 0.25
    # Not given as flags: the environment still applies.
    assert settings.rate_limits == "3/1m"
    assert settings.threads == 4


def test_flags_override_defaults_without_environment():
    args = parse("serve", "--migrate-on-start", "off", "--threads", "2", "--log-level", "WARNING")
    settings = load(args, environ={})
    assert (settings.migrate_on_start, settings.threads, settings.log_level) == (False, 2, "WARNING")
    assert settings.listen == Settings().listen


def test_a_false_flag_overrides_a_true_environment_variable():
    # False is a value, not "flag absent".
    settings = load(parse("serve", "--auto-follow", "false"), environ={"SOCIALGRAPH_AUTO_FOLLOW": "true"})
    assert settings.auto_follow is False
    settings = load(parse("serve", "--auto-follow", "1"), environ={"SOCIALGRAPH_AUTO_FOLLOW": "0"})
    assert settings.auto_follow is True


def test_migrate_and_recount_take_database_url_flag_over_environment():
    for command in ("migrate", "recount"):
        args = parse(command, "--database-url", "sqlite:////tmp/flag.db")
        settings = load(args, environ={"SOCIALGRAPH_DATABASE_URL": "sqlite:////tmp/env.db"})
        assert settings.database_url == "sqlite:////tmp/flag.db"


@pytest.mark.parametrize(
    "text, value",
    [
        ("true", True), ("True", True), ("TRUE", True), ("1", True), ("yes", True), ("YES", True), ("on", True),
        (" true ", True),
        ("false", False), ("False", False), ("0", False), ("no", False), ("No", False), ("off", False),
    ],
)
def test_booleans_parse_from_environment_and_flags(text, value):
    assert load(None, environ={"SOCIALGRAPH_AUTO_FOLLOW": text}).auto_follow is value
    assert load(None, environ={"SOCIALGRAPH_MIGRATE_ON_START": text}).migrate_on_start is value
    assert load(parse("serve", "--auto-follow", text), environ={}).auto_follow is value


@pytest.mark.parametrize("text", ["", "maybe", "2", "-1", "truee", "y", "n", "enabled"])
def test_bad_booleans_are_refused(text):
    with pytest.raises(ValueError, match="SOCIALGRAPH_AUTO_FOLLOW"):
        load(None, environ={"SOCIALGRAPH_AUTO_FOLLOW": text})
    with pytest.raises(SystemExit) as exited:
        parse("serve", "--auto-follow", text)
    assert exited.value.code == 2


@pytest.mark.parametrize(
    "name, text",
    [
        ("CONNECTION_LIMIT", "many"),
        ("CONNECTION_LIMIT", "1.5"),
        ("THREADS", ""),
        ("GRACE_PERIOD", "soon"),
        ("MAX_MESSAGE_BYTES", "4MB"),
        ("HEALTH_INTERVAL", "x"),
    ],
)
def test_bad_numbers_in_environment_raise_naming_the_variable(name, text):
    with pytest.raises(ValueError, match=f"SOCIALGRAPH_{name}"):
        load(None, environ={f"SOCIALGRAPH_{name}": text})


@pytest.mark.parametrize(
    "environ, flags, pattern",
    [
        ({"SOCIALGRAPH_CONNECTION_LIMIT": "0"}, (), r"connection[_-]limit"),
        ({}, ("--connection-limit", "0"), r"connection[_-]limit"),
        ({}, ("--connection-limit", "-5"), r"connection[_-]limit"),
        ({"SOCIALGRAPH_THREADS": "0"}, (), r"threads"),
        ({}, ("--threads", "0"), r"threads"),
        ({"SOCIALGRAPH_LISTEN": "127.0.0.1"}, (), r"listen"),
        ({}, ("--listen", "127.0.0.1:http"), r"listen"),
        ({"SOCIALGRAPH_RATE_LIMITS": "garbage"}, (), r"(?i)rate[_-]limits"),
        ({}, ("--rate-limits", "0/1h"), r"(?i)rate[_-]limits"),
        ({}, ("--rate-limits", "20/1h,"), r"(?i)rate[_-]limits"),
    ],
)
def test_invalid_values_raise_naming_the_setting(environ, flags, pattern):
    with pytest.raises(ValueError, match=pattern):
        load(parse("serve", *flags), environ=environ)


def test_settings_are_immutable():
    settings = load(None, environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.listen = "127.0.0.1:1"  # type: ignore[misc]


def test_every_field_has_a_documented_env_var_name():
    fields = dataclasses.fields(Settings)
    assert fields, "Settings has no fields"
    for f in fields:
        assert f.name.isidentifier() and f.name == f.name.lower(), f.name
        assert config.env_name(f) == f"SOCIALGRAPH_{f.name.upper()}"
        assert config.env_name(f).startswith(config.ENV_PREFIX)
        assert f.metadata.get("help"), f"{f.name} has no help text"
        commands = f.metadata.get("commands")
        assert commands, f.name
        # Each command it applies to documents the variable and the flag in --help.
        for command in commands:
            parser = argparse.ArgumentParser(prog=f"socialgraph {command}")
            config.add_arguments(parser, command)
            help_text = parser.format_help()
            assert config.env_name(f) in help_text, (command, f.name)
            assert "--" + f.name.replace("_", "-") in help_text, (command, f.name)
            assert repr(f.default) in " ".join(help_text.split()), (command, f.name)
    assert {"serve", "migrate", "recount"} <= set(COMMANDS)
    # database_url and log_level apply to every database command.
    for command in ("serve", "migrate", "recount"):
        names = {f.name for f in config.fields_for(command)}
        assert {"database_url", "log_level"} <= names, command
    # serve takes every setting.
    assert {f.name for f in config.fields_for("serve")} == {f.name for f in fields}


def test_every_env_var_and_flag_is_in_the_readme():
    text = README.read_text()
    for f in dataclasses.fields(Settings):
        assert f"`{config.env_name(f)}`" in text, f.name
        assert "`--" + f.name.replace("_", "-") + "`" in text, f.name


def test_every_command_with_settings_is_a_real_subcommand():
    from server import cli

    parser = cli._parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(COMMANDS) <= set(sub.choices)


def test_the_real_command_line_documents_every_variable(capsys):
    from server import cli

    for command in COMMANDS:
        with pytest.raises(SystemExit) as exited:
            cli.main([command, "--help"])
        assert exited.value.code == 0
        out = capsys.readouterr().out
        for f in config.fields_for(command):
            assert config.env_name(f) in out, (command, f.name)
