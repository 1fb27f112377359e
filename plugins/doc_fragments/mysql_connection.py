# -*- coding: utf-8 -*-
# Copyright: nospof project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by the nospof.webstack MySQL/MariaDB modules."""

from __future__ import annotations


class ModuleDocFragment:
    """Options from plugins/module_utils/mysql_connection.py mysql_connection_argument_spec()."""

    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host of the server the module manages.
      - Ignored when O(login_unix_socket) is set.
    type: str
    default: localhost
  login_port:
    description:
      - TCP port of the server the module manages.
    type: int
    default: 3306
  login_user:
    description:
      - Account the module logs in with.
      - With the default V(root) and a unix socket, MariaDB's C(unix_socket)
        authentication lets the module in when it runs as root.
    type: str
    default: root
  login_password:
    description:
      - Password of O(login_user). Not needed with C(unix_socket) authentication.
    type: str
  login_unix_socket:
    description:
      - Unix socket to connect through, for example C(/run/mysqld/mysqld.sock).
      - Takes precedence over O(login_host) and O(login_port).
    type: path
  connect_timeout:
    description:
      - Seconds to wait for a connection to be established.
    type: int
    default: 30
  ca_cert:
    description:
      - CA certificate that signed the server certificate. Setting it turns TLS on
        and makes the module verify the server certificate.
    type: path
  client_cert:
    description:
      - Client certificate to present to the server. Setting it turns TLS on.
    type: path
  client_key:
    description:
      - Private key of O(client_cert).
    type: path
  check_hostname:
    description:
      - Whether the server certificate must name the host connected to.
      - Default is to check it whenever O(ca_cert) is set.
    type: bool
requirements:
  - PyMySQL (Debian package C(python3-pymysql)) on the host the module runs on.
"""
