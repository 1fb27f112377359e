#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nospof project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module nospof.webstack.mysql_replication_info; the logic lives in module_utils/replication_info.py."""

from __future__ import annotations

DOCUMENTATION = r"""
module: mysql_replication_info
short_description: Read a MySQL or MariaDB server's replication role, GTID positions and semi-sync state
version_added: 0.1.0
description:
  - Reads one server and changes nothing - its version, server ID, read-only variables, GTID
    positions, the replica side (source, threads, lag, last errors, received GTIDs), semi-sync
    switches and state, and whether it holds schemas other than the system ones.
  - Every return key is always present; a key that does not apply to this server is null.
    A switchover or failover can gather it from every database host and decide from the facts.
  - MySQL and MariaDB names come from one table per flavour and version, see
    C(plugins/module_utils/replication_sql.py).
author:
  - nospof project (@nospof)
extends_documentation_fragment:
  - nospof.webstack.mysql_connection
attributes:
  check_mode:
    description: The module only reads, so check mode runs it as usual.
    support: full
  diff_mode:
    description: The module changes nothing, so there is no diff.
    support: none
  idempotent:
    description: The module only reads and never reports a change.
    support: full
options:
  allow_unreachable:
    description:
      - V(false) fails when the server cannot be connected to (down, connection refused,
        timeout, or login rejected), with the connector's message.
      - V(true) returns RV(reachable=false) and the message in RV(error) instead, with every
        other key null, so a play can gather facts from hosts that are down.
    type: bool
    default: false
notes:
  - Needs PyMySQL on the host the module runs on. The login account needs no privilege beyond
    C(REPLICATION CLIENT) (MySQL) or C(SLAVE MONITOR)/C(REPLICA MONITOR) (MariaDB) for the
    replica status.
seealso:
  - module: nospof.webstack.mysql_primary
  - module: nospof.webstack.mysql_replica
"""

EXAMPLES = r"""
- name: Read the replication facts of every database host, including the ones that are down
  nospof.webstack.mysql_replication_info:
    login_unix_socket: /run/mysqld/mysqld.sock
    allow_unreachable: true
  register: db_replication

- name: Stop when a replica's SQL thread has stopped
  ansible.builtin.assert:
    that: db_replication.replica is none or db_replication.replica.sql_running == 'Yes'
    fail_msg: "{{ db_replication.replica.last_sql_error | default('') }}"
"""

RETURN = r"""
reachable:
  description: Whether the server could be connected to.
  returned: always
  type: bool
  sample: true
error:
  description: Why the server could not be connected to; null when it could.
  returned: always
  type: str
  sample: null
version:
  description: The server's C(VERSION()).
  returned: always
  type: str
  sample: 10.11.6-MariaDB-0+deb12u1-log
flavour:
  description: C(mariadb) or C(mysql).
  returned: always
  type: str
  sample: mariadb
server_id:
  description: The server's C(server_id).
  returned: always
  type: int
  sample: 1
read_only:
  description: Whether any read-only variable is on.
  returned: always
  type: bool
  sample: false
read_only_variables:
  description: The read-only variables of this flavour (C(read_only), and C(super_read_only) on MySQL), C(ON) or C(OFF).
  returned: always
  type: dict
  sample:
    read_only: "OFF"
gtid_format:
  description:
    - How this server writes GTIDs, for the GTID functions of C(plugins/module_utils/gtid.py).
    - C(mariadb) for domain-server_id-seq lists, C(mysql) for GTID sets.
  returned: always
  type: str
  sample: mariadb
gtid_executed:
  description:
    - Every transaction the server applied or wrote.
    - MariaDB C(@@gtid_binlog_state) (the last seq per domain and server ID) merged with
      C(@@gtid_slave_pos), since a replica seeded from a dump applied more than its binary log
      lists; MySQL C(@@gtid_executed).
  returned: always
  type: str
  sample: 0-1-100,0-2-150
gtid_binlog_position:
  description: The position of the server's binary log (MariaDB C(@@gtid_binlog_pos), MySQL C(@@gtid_executed)).
  returned: always
  type: str
  sample: 0-2-150
gtid_applied:
  description: The position the replica threads applied (MariaDB C(@@gtid_slave_pos), MySQL C(@@gtid_executed)).
  returned: always
  type: str
  sample: 0-1-100
replica:
  description: The replica side; null when no replication source is configured.
  returned: always
  type: dict
  contains:
    source_host:
      description: The configured primary's address.
      type: str
    source_port:
      description: The configured primary's port.
      type: int
    io_running:
      description: The IO thread, C(Yes), C(No) or C(Connecting).
      type: str
    sql_running:
      description: The SQL thread, C(Yes) or C(No).
      type: str
    seconds_behind:
      description: Lag in seconds; null while a thread is stopped.
      type: int
    last_io_errno:
      description: The IO thread's last error number, 0 if none.
      type: int
    last_io_error:
      description: The IO thread's last error text.
      type: str
    last_sql_errno:
      description: The SQL thread's last error number, 0 if none.
      type: int
    last_sql_error:
      description: The SQL thread's last error text.
      type: str
    using_gtid:
      description: Whether the replica positions by GTID.
      type: bool
    gtid_received:
      description: GTIDs the IO thread received (C(Gtid_IO_Pos) or C(Retrieved_Gtid_Set)).
      type: str
  sample:
    source_host: 10.89.20.21
    source_port: 3306
    io_running: "Yes"
    sql_running: "Yes"
    seconds_behind: 0
    last_io_errno: 0
    last_io_error: ""
    last_sql_errno: 0
    last_sql_error: ""
    using_gtid: true
    gtid_received: 0-1-100
semi_sync:
  description: Semi-synchronous replication; a value is null when the server lacks the variable (plugin not loaded).
  returned: always
  type: dict
  contains:
    primary_enabled:
      description: The primary side is switched on.
      type: bool
    primary_active:
      description: The primary side is working now (its C(_status) status variable).
      type: bool
    primary_clients:
      description: Replicas connected semi-synchronously.
      type: int
    replica_enabled:
      description: The replica side is switched on.
      type: bool
    replica_active:
      description: The replica side is working now.
      type: bool
  sample:
    primary_enabled: true
    primary_active: true
    primary_clients: 1
    replica_enabled: false
    replica_active: false
has_user_schemas:
  description: Whether the server holds any schema other than the system ones.
  returned: always
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nospof.webstack.plugins.module_utils.mysql_connection import (
    MysqlConnectionSettings,
    mysql_connection_argument_spec,
)
from ansible_collections.nospof.webstack.plugins.module_utils.replica import ReplicaError
from ansible_collections.nospof.webstack.plugins.module_utils.replication_info import (
    read_replication_info,
)


def argument_spec() -> dict:
    """The module's options plus the shared connection options."""
    spec = mysql_connection_argument_spec()
    spec.update(allow_unreachable=dict(type="bool", default=False))
    return spec


def main() -> None:
    """Run the module."""
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        info = read_replication_info(MysqlConnectionSettings.from_login_params(module.params),
                                     module.params["allow_unreachable"])
    except ReplicaError as error:
        module.fail_json(msg=str(error), changed=False)
    module.exit_json(changed=False, **info)


if __name__ == "__main__":
    main()
