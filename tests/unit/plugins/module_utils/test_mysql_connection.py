"""Shared connection options: the spec matches the doc fragment, and connection errors are clear."""

from __future__ import annotations

import socket
import ssl

import pytest
import yaml
from ansible_collections.nospof.webstack.plugins.doc_fragments.mysql_connection import (
    ModuleDocFragment,
)
from ansible_collections.nospof.webstack.plugins.module_utils import mysql_connection
from ansible_collections.nospof.webstack.plugins.module_utils.mysql_connection import (
    MysqlConnectionError,
    MysqlConnectionSettings,
    connect_mysql,
    mysql_connection_argument_spec,
)


def test_argument_spec_matches_the_doc_fragment():
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    spec = mysql_connection_argument_spec()

    assert set(spec) == set(documented)
    for name, option in spec.items():
        assert option["type"] == documented[name]["type"], name
        assert option.get("default") == documented[name].get("default"), name
    assert spec["login_password"]["no_log"] is True


def test_settings_from_login_params():
    params = {name: option.get("default") for name, option in mysql_connection_argument_spec().items()}
    params["login_unix_socket"] = "/run/mysqld/mysqld.sock"

    settings = MysqlConnectionSettings.from_login_params(params)

    assert settings.describe() == "root@/run/mysqld/mysqld.sock"
    assert settings.is_local and not settings.uses_tls and settings.tls_context() is None


def test_tls_without_a_ca_encrypts_without_verifying():
    context = MysqlConnectionSettings(host="db1", tls=True).tls_context()

    assert context is not None and context.verify_mode == ssl.CERT_NONE


def test_missing_pymysql_names_the_package_and_interpreter(monkeypatch):
    monkeypatch.setattr(mysql_connection, "pymysql", None)

    with pytest.raises(MysqlConnectionError, match="PyMySQL .* install python3-pymysql"):
        connect_mysql(MysqlConnectionSettings())


def test_unreachable_server_names_the_address():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(MysqlConnectionError, match="as root@127.0.0.1:%d: .*Can't connect" % port):
        connect_mysql(MysqlConnectionSettings(host="127.0.0.1", port=port, connect_timeout=2))


def test_unreadable_tls_files_fail_clearly(tmp_path):
    settings = MysqlConnectionSettings(host="127.0.0.1", ca_cert=str(tmp_path / "missing.pem"))

    with pytest.raises(MysqlConnectionError, match="Cannot load the TLS files"):
        connect_mysql(settings)
