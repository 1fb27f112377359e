# -*- coding: utf-8 -*-
# Copyright: nospof project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared MySQL/MariaDB connection options and a PyMySQL connector with clear errors."""

from __future__ import annotations

import ssl
import sys
import traceback
from dataclasses import dataclass
from typing import Any, Dict, Optional

try:
    import pymysql
    import pymysql.cursors
except ImportError:
    pymysql = None
    PYMYSQL_IMPORT_ERROR: Optional[str] = traceback.format_exc()
else:
    PYMYSQL_IMPORT_ERROR = None


def mysql_connection_argument_spec() -> Dict[str, Dict[str, Any]]:
    """Argument spec of the options documented in the nospof.webstack.mysql_connection fragment."""
    return dict(
        login_host=dict(type="str", default="localhost"),
        login_port=dict(type="int", default=3306),
        login_user=dict(type="str", default="root"),
        login_password=dict(type="str", no_log=True),
        login_unix_socket=dict(type="path"),
        connect_timeout=dict(type="int", default=30),
        ca_cert=dict(type="path"),
        client_cert=dict(type="path"),
        client_key=dict(type="path", no_log=False),
        check_hostname=dict(type="bool"),
    )


class MysqlConnectionError(Exception):
    """PyMySQL is missing, or the server refused or could not be reached."""


@dataclass(frozen=True)
class MysqlConnectionSettings:
    """Where and how to connect; TLS is used when tls is true or any certificate is set."""

    host: str = "localhost"
    port: int = 3306
    user: str = "root"
    password: Optional[str] = None
    unix_socket: Optional[str] = None
    connect_timeout: int = 30
    tls: bool = False
    ca_cert: Optional[str] = None
    client_cert: Optional[str] = None
    client_key: Optional[str] = None
    check_hostname: Optional[bool] = None

    @classmethod
    def from_login_params(cls, params: Dict[str, Any]) -> "MysqlConnectionSettings":
        """Settings from the login_* options of mysql_connection_argument_spec()."""
        return cls(
            host=params["login_host"],
            port=params["login_port"],
            user=params["login_user"],
            password=params["login_password"],
            unix_socket=params["login_unix_socket"],
            connect_timeout=params["connect_timeout"],
            ca_cert=params["ca_cert"],
            client_cert=params["client_cert"],
            client_key=params["client_key"],
            check_hostname=params["check_hostname"],
        )

    @property
    def uses_tls(self) -> bool:
        """Whether the connection must be encrypted."""
        return bool(self.tls or self.ca_cert or self.client_cert or self.client_key)

    @property
    def is_local(self) -> bool:
        """Whether the server runs on this host (unix socket or loopback address)."""
        return bool(self.unix_socket) or self.host in ("localhost", "127.0.0.1", "::1")

    def describe(self) -> str:
        """user@address, for messages."""
        address = self.unix_socket if self.unix_socket else "%s:%s" % (self.host, self.port)
        return "%s@%s" % (self.user, address)

    def tls_context(self) -> Optional[ssl.SSLContext]:
        """An SSLContext for these settings, or None without TLS."""
        if not self.uses_tls:
            return None
        if self.ca_cert:
            context = ssl.create_default_context(cafile=self.ca_cert)
            context.check_hostname = self.check_hostname is not False
        else:
            # encrypted but unverified, as the MySQL clients do without a CA
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context


def connect_mysql(settings: MysqlConnectionSettings) -> Any:
    """An autocommit PyMySQL connection returning dict rows, or MysqlConnectionError."""
    if pymysql is None:
        raise MysqlConnectionError(
            "The PyMySQL Python library is required on the host this module runs on "
            "(interpreter %s); install python3-pymysql or set ansible_python_interpreter. "
            "Import error: %s" % (sys.executable, PYMYSQL_IMPORT_ERROR))
    arguments: Dict[str, Any] = dict(
        user=settings.user,
        connect_timeout=settings.connect_timeout,
        autocommit=True,
        cursorclass=pymysql.cursors.DictCursor,
    )
    if settings.password is not None:
        arguments["password"] = settings.password
    if settings.unix_socket:
        arguments["unix_socket"] = settings.unix_socket
    else:
        arguments["host"] = settings.host
        arguments["port"] = settings.port
    try:
        context = settings.tls_context()
    except (OSError, ssl.SSLError) as error:
        raise MysqlConnectionError("Cannot load the TLS files for %s: %s"
                                   % (settings.describe(), error))
    if context is not None:
        arguments["ssl"] = context
    try:
        return pymysql.connect(**arguments)
    except pymysql.err.MySQLError as error:
        raise MysqlConnectionError("Cannot connect to MySQL/MariaDB as %s: %s"
                                   % (settings.describe(), error))
