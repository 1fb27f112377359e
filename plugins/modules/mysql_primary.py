#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nospof project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module nospof.webstack.mysql_primary; the logic lives in module_utils/primary.py."""

from __future__ import annotations

DOCUMENTATION = r"""
module: mysql_primary
short_description: Promote a MySQL or MariaDB server to primary, or fence it
version_added: 0.1.0
description:
  - Gives the server it logs in to the primary role (O(state=present)) or takes writes away
    from it (O(state=fenced)), for switchover and failover.
  - It reads the read-only variables, the replica configuration and the semi-sync switches
    first, changes only what differs, reads them again, and reports changed only when they
    differ from before or when it ended sessions.
  - O(state=present) first waits until the server applied every transaction its replica
    threads received (O(apply_received)) and, optionally, a given GTID position
    (O(wait_for_gtid)), together within O(timeout). On timeout it fails and sends no
    statement. Then it stops replication and removes its configuration
    (C(RESET REPLICA ALL)), switches semi-sync to the primary side (O(semi_sync)), and
    switches the read-only variables off last, so the first writes are already semi-synchronous.
  - O(state=fenced) switches the read-only variables on (C(read_only), then
    C(super_read_only) on MySQL), switches the primary side of semi-sync off, and ends the
    connections of the accounts in O(kill_user_sessions), so no open transaction of the
    application can commit afterwards. Replication settings stay as they are.
  - MySQL and MariaDB names come from one table per flavour and version, see
    C(plugins/module_utils/replication_sql.py).
author:
  - nospof project (@nospof)
extends_documentation_fragment:
  - nospof.webstack.mysql_connection
attributes:
  check_mode:
    description: Reads the server and reports the statements it would send and the settings after, without waiting or changing anything.
    support: full
  diff_mode:
    description: Shows read-only variables, replica configuration and semi-sync switches before and after.
    support: full
  idempotent:
    description: A second run with the same options reports no change (unless new sessions of O(kill_user_sessions) appeared).
    support: full
options:
  state:
    description:
      - V(present) makes the server a writable primary.
      - V(fenced) makes it read-only and ends the sessions of O(kill_user_sessions).
    type: str
    choices: [present, fenced]
    required: true
  apply_received:
    description:
      - With O(state=present) and replication configured, wait until the server applied the GTID
        position its IO thread received (C(Gtid_IO_Pos) or C(Retrieved_Gtid_Set)) before promoting.
    type: bool
    default: true
  wait_for_gtid:
    description:
      - With O(state=present), a GTID position the server must have applied before it is promoted,
        for example the fenced old primary's RV(gtid_binlog_position) in a planned switchover.
    type: str
  timeout:
    description:
      - Seconds that the waits of O(apply_received) and O(wait_for_gtid) may take together.
      - Also bounds how long switching read-only on may wait for running write statements.
    type: int
    default: 30
  semi_sync:
    description:
      - With O(state=present), switch the primary side of semi-synchronous replication on and the
        replica side off. The server must have the semi-sync variables (built into MariaDB, plugins
        on MySQL).
      - V(false) leaves both switches as they are.
    type: bool
    default: true
  kill_user_sessions:
    description:
      - With O(state=fenced), user names (without host) whose connections are ended with
        C(KILL CONNECTION) after the server is read-only. Their open transactions roll back.
    type: list
    elements: str
    default: []
notes:
  - Needs PyMySQL on the host the module runs on, and an account with C(SUPER) or the finer
    C(REPLICATION SLAVE ADMIN), C(SYSTEM VARIABLES ADMIN) and C(CONNECTION ADMIN) privileges.
  - When the server cannot be reached, the module fails and changes nothing.
  - O(state=fenced) fails when a write statement keeps running for O(timeout) seconds, since the
    server cannot become read-only before it ends.
seealso:
  - module: nospof.webstack.mysql_replication_info
  - module: nospof.webstack.mysql_replica
"""

EXAMPLES = r"""
- name: Fence the old primary and end the application's sessions
  nospof.webstack.mysql_primary:
    login_unix_socket: /run/mysqld/mysqld.sock
    state: fenced
    kill_user_sessions: [app]
  register: old_primary

- name: Promote the chosen replica once it applied everything the old primary wrote
  nospof.webstack.mysql_primary:
    login_unix_socket: /run/mysqld/mysqld.sock
    state: present
    wait_for_gtid: "{{ old_primary.gtid_binlog_position }}"
    timeout: 60
  delegate_to: db2

- name: Failover - promote a replica of a dead primary after it applied what it received
  nospof.webstack.mysql_primary:
    login_unix_socket: /run/mysqld/mysqld.sock
    state: present
"""

RETURN = r"""
state:
  description: The requested role.
  returned: always
  type: str
  sample: present
commands:
  description:
    - Statements sent, in order; in check mode, the ones that would be sent.
  returned: always
  type: list
  elements: str
  sample:
    - STOP REPLICA
    - RESET REPLICA ALL
    - SET GLOBAL rpl_semi_sync_slave_enabled = OFF
    - SET GLOBAL rpl_semi_sync_master_enabled = ON
    - SET GLOBAL read_only = OFF
before:
  description: The settings the module manages, before the run.
  returned: success
  type: dict
  contains:
    read_only:
      description: Whether any read-only variable is on.
      type: bool
    read_only_variables:
      description: Each read-only variable, C(ON) or C(OFF).
      type: dict
    replica_configured:
      description: Whether a replication source is configured.
      type: bool
    semi_sync_primary_enabled:
      description: The primary side of semi-sync; null when the server lacks the variable.
      type: bool
    semi_sync_replica_enabled:
      description: The replica side of semi-sync; null when the server lacks the variable.
      type: bool
  sample:
    read_only: true
    read_only_variables:
      read_only: "ON"
    replica_configured: true
    semi_sync_primary_enabled: false
    semi_sync_replica_enabled: true
after:
  description: The same settings after the run; in check mode, the predicted ones.
  returned: success
  type: dict
  sample:
    read_only: false
    read_only_variables:
      read_only: "OFF"
    replica_configured: false
    semi_sync_primary_enabled: true
    semi_sync_replica_enabled: false
sessions_killed:
  description: Connections ended; in check mode, the number that would be ended.
  returned: always
  type: int
  sample: 3
gtid_received:
  description: The received GTID position the module waited for before promoting; null when it did not wait for one.
  returned: success
  type: str
  sample: 0-1-1042
gtid_executed:
  description:
    - Every transaction the server applied or wrote, after the change (MariaDB binlog state
      merged with C(gtid_slave_pos), MySQL C(gtid_executed)).
  returned: success
  type: str
  sample: 0-1-1042
gtid_binlog_position:
  description:
    - The server's binary log position after the change (MariaDB C(gtid_binlog_pos), MySQL
      C(gtid_executed)). After fencing, the position a new primary must apply (O(wait_for_gtid)).
  returned: success
  type: str
  sample: 0-1-1042
server_version:
  description: The server's C(VERSION()).
  returned: success
  type: str
  sample: 10.11.6-MariaDB-0+deb12u1-log
sql_flavour:
  description: The row of the SQL table used for this server.
  returned: success
  type: str
  sample: MariaDB 10.5.1+
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nospof.webstack.plugins.module_utils.mysql_connection import (
    mysql_connection_argument_spec,
)
from ansible_collections.nospof.webstack.plugins.module_utils.primary import (
    PrimaryError,
    PrimaryRequest,
    primary_manager_from_params,
)
from ansible_collections.nospof.webstack.plugins.module_utils.replica import ReplicaError


def argument_spec() -> dict:
    """The module's options plus the shared connection options."""
    spec = mysql_connection_argument_spec()
    spec.update(
        state=dict(type="str", choices=["present", "fenced"], required=True),
        apply_received=dict(type="bool", default=True),
        wait_for_gtid=dict(type="str"),
        timeout=dict(type="int", default=30),
        semi_sync=dict(type="bool", default=True),
        kill_user_sessions=dict(type="list", elements="str", default=[]),
    )
    return spec


def main() -> None:
    """Run the module."""
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        manager = primary_manager_from_params(module.params)
        result = manager.ensure(PrimaryRequest.from_params(module.params), module.check_mode)
    except (PrimaryError, ReplicaError) as error:
        failure = {"changed": False, "commands": [], "sessions_killed": 0}
        failure.update(error.result)
        module.fail_json(msg=str(error), **failure)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
