#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nospof project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module nospof.webstack.mysql_replica; the logic lives in module_utils/replica.py."""

from __future__ import annotations

DOCUMENTATION = r"""
module: mysql_replica
short_description: Make a MySQL or MariaDB server a GTID replica of a primary, and keep it so
version_added: 0.1.0
description:
  - Reads the replica status first and compares the configured source (host, port, user,
    password, TLS, GTID positioning) with the requested one. It changes the source only when
    a setting differs, stops and starts the replica threads only when needed, and reports
    changed only when it ran a statement.
  - After starting, it waits until the IO and SQL threads run, or fails with the replica's own
    last error text (for example C(Access denied) or C(Can't connect)).
  - Optionally it seeds an empty replica from a consistent dump of the primary (O(seed=auto))
    and waits until the replica has applied the primary's GTID position (O(wait_for_sync)).
  - A server with no replication configured that holds user schemas and transactions it wrote
    itself (GTIDs with its own server ID on MariaDB, its own server UUID on MySQL), typically a
    former primary after a switchover or failover, is joined safely. The module first reads the
    primary's executed GTIDs and refuses, changing nothing, when this server has any transaction
    the primary lacks (errant transactions, named in the message and in RV(errant_gtids));
    O(seed=force) discards them by re-seeding. Otherwise replication starts right after this
    server's own history - on MariaDB the module first sets C(gtid_slave_pos) to
    C(gtid_binlog_pos) when the binary log is ahead of it; MySQL's GTID auto-positioning needs no
    such step.
  - MySQL and MariaDB syntax differences come from one table per flavour and version
    (MariaDB 10.3.3+, MySQL 8.0, 8.0.22+, 8.0.23+, 8.0.26+ and 8.4+), see
    C(plugins/module_utils/replication_sql.py).
  - Run it on the replica host (for example with C(delegate_to)); the primary reachability
    check, the password read-back on MariaDB and seeding all assume that.
author:
  - nospof project (@nospof)
extends_documentation_fragment:
  - nospof.webstack.mysql_connection
attributes:
  check_mode:
    description: Reads the replica and predicts C(changed), the commands and the diff without running them.
    support: full
  diff_mode:
    description: Shows the source settings and state before and after; passwords are masked.
    support: full
  idempotent:
    description: A second run with the same options reports no change.
    support: full
options:
  primary_host:
    description:
      - Address of the primary the replica replicates from, as the replica server reaches it.
      - Required when O(state=running).
    type: str
  primary_port:
    description:
      - TCP port of the primary.
    type: int
    default: 3306
  primary_user:
    description:
      - Replication account on the primary (needs only C(REPLICATION SLAVE), called
        C(REPLICATION REPLICA) on newer servers).
      - Required when O(state=running).
    type: str
  primary_password:
    description:
      - Password of O(primary_user).
      - When it is sent depends on O(primary_password_update).
    type: str
  primary_password_update:
    description:
      - V(always) keeps the stored password equal to O(primary_password). The module reads the
        stored password back (MySQL from C(mysql.slave_master_info); MariaDB from C(master.info)
        in the data directory, when the server runs on this host) and sends it only when it
        differs. When it cannot be read, the password is sent only when the source is created,
        the replication user changes, or the IO thread fails with C(Access denied) (error 1045).
      - V(on_create) sends the password only when the source is first configured.
    type: str
    choices: [always, on_create]
    default: always
  primary_ssl:
    description:
      - Encrypt the replication connection. Implied by any O(primary_ssl_ca),
        O(primary_ssl_cert) or O(primary_ssl_key).
    type: bool
    default: false
  primary_ssl_ca:
    description:
      - CA certificate file on the replica host that signed the primary's certificate.
    type: path
  primary_ssl_cert:
    description:
      - Client certificate file on the replica host.
    type: path
  primary_ssl_key:
    description:
      - Private key file of O(primary_ssl_cert).
    type: path
  primary_ssl_verify_server_cert:
    description:
      - Verify that the primary's certificate names O(primary_host).
    type: bool
    default: false
  state:
    description:
      - V(running) configures the source and makes both replica threads run.
      - V(stopped) stops the replica threads; with O(primary_host) it also configures the source.
      - V(absent) stops the threads and removes the replication configuration
        (C(RESET REPLICA ALL)); the data stays.
    type: str
    choices: [running, stopped, absent]
    default: running
  seed:
    description:
      - V(auto) seeds the replica when it has no replication configured and no schema other than
        the system ones. It resets the replica's binary log, streams
        C(mariadb-dump --single-transaction --all-databases) (or C(mysqldump)) of the primary
        into the replica's client with binary logging off, sets the GTID position the dump was
        taken at, then configures and starts replication. The primary stays writable.
        A replica that is already configured, or holds data, is never seeded.
      - V(force) seeds the same way whenever no replication is configured, even when the server
        holds data - it drops every user schema first. Use it to rejoin a former primary whose
        errant transactions are to be discarded. A configured replica is not seeded again, so a
        second run changes nothing.
      - V(never) only configures replication; an empty replica then replays the primary's binary
        logs from the beginning, which works only if the primary still has all of them.
      - A seed marks the replica with a C(nospof_seed_incomplete) schema until its GTID position
        is set. A server that still has it holds part of a dump that was cut off; V(auto) and
        V(force) drop what it holds and seed it again, and V(never) fails, changing nothing.
    type: str
    choices: [auto, force, never]
    default: never
  seed_user:
    description:
      - Account on the primary for the dump, required with O(seed=auto) and O(seed=force). It
        needs C(SELECT), C(SHOW VIEW), C(TRIGGER), C(EVENT), C(LOCK TABLES), C(RELOAD) and
        C(BINLOG MONITOR) (MariaDB) or C(REPLICATION CLIENT) (MySQL) on C(*.*).
    type: str
  seed_password:
    description:
      - Password of O(seed_user). Passed to the dump through a private option file.
    type: str
  seed_timeout:
    description:
      - Seconds the dump and load may take together before they are killed and the module fails.
    type: int
    default: 3600
  wait_for_sync:
    description:
      - After the threads run, read the primary's GTID position (with O(primary_user)) and wait
        until the replica has applied it, or fail after O(timeout) seconds.
    type: bool
    default: false
  timeout:
    description:
      - Seconds to wait for the replica threads to run, and again for O(wait_for_sync).
    type: int
    default: 30
notes:
  - On the replica host it needs PyMySQL, and for O(seed=auto) the C(mariadb-dump)/C(mariadb)
    (or C(mysqldump)/C(mysql)) client programs.
  - A failed run never hides the error; the failure result still carries the commands that ran,
    the thread states and the replica's last errors.
seealso:
  - name: MariaDB CHANGE MASTER TO
    description: The statement the module builds on MariaDB.
    link: https://mariadb.com/kb/en/change-master-to/
  - name: MySQL CHANGE REPLICATION SOURCE TO
    description: The statement the module builds on MySQL 8.0.23 and later.
    link: https://dev.mysql.com/doc/refman/8.4/en/change-replication-source-to.html
"""

EXAMPLES = r"""
- name: Replicate db2 from db1, seeding db2 if it is empty
  nospof.webstack.mysql_replica:
    login_unix_socket: /run/mysqld/mysqld.sock
    primary_host: 10.89.20.21
    primary_user: replication
    primary_password: "{{ vault_mysql_replication_password }}"
    seed: auto
    seed_user: seed
    seed_password: "{{ vault_mysql_seed_password }}"
    wait_for_sync: true

- name: Replicate over TLS, verifying the primary's certificate
  nospof.webstack.mysql_replica:
    login_unix_socket: /run/mysqld/mysqld.sock
    primary_host: db1.example.com
    primary_user: replication
    primary_password: "{{ vault_mysql_replication_password }}"
    primary_ssl_ca: /etc/mysql/ssl/ca.pem
    primary_ssl_verify_server_cert: true

- name: Pause replication (threads stop, configuration stays)
  nospof.webstack.mysql_replica:
    login_unix_socket: /run/mysqld/mysqld.sock
    state: stopped

- name: Rejoin the old primary after a switchover (refused if it has errant transactions)
  nospof.webstack.mysql_replica:
    login_unix_socket: /run/mysqld/mysqld.sock
    primary_host: 10.89.20.22
    primary_user: replication
    primary_password: "{{ vault_mysql_replication_password }}"
    wait_for_sync: true

- name: Rejoin it discarding its errant transactions (drops its data and re-seeds it)
  nospof.webstack.mysql_replica:
    login_unix_socket: /run/mysqld/mysqld.sock
    primary_host: 10.89.20.22
    primary_user: replication
    primary_password: "{{ vault_mysql_replication_password }}"
    seed: force
    seed_user: seed
    seed_password: "{{ vault_mysql_seed_password }}"

- name: Forget the primary (for example before promoting this server)
  nospof.webstack.mysql_replica:
    login_unix_socket: /run/mysqld/mysqld.sock
    state: absent
"""

RETURN = r"""
state:
  description: Replication state after the run (in check mode, the current one).
  returned: always
  type: str
  sample: running
io_thread:
  description: The replica IO thread, C(Yes), C(No) or C(Connecting).
  returned: always
  type: str
  sample: "Yes"
sql_thread:
  description: The replica SQL thread, C(Yes) or C(No).
  returned: always
  type: str
  sample: "Yes"
seconds_behind_primary:
  description: Seconds the replica lags behind the primary; null while a thread is stopped.
  returned: always
  type: int
  sample: 0
gtid_received:
  description: GTID position received by the IO thread (C(Gtid_IO_Pos) or C(Retrieved_Gtid_Set)).
  returned: always
  type: str
  sample: 0-1-42
gtid_applied:
  description: GTID position applied by the replica (C(gtid_slave_pos) or C(gtid_executed)).
  returned: always
  type: str
  sample: 0-1-42
primary_gtid_position:
  description: The primary's GTID position the module waited for.
  returned: when O(wait_for_sync=true) and the threads run
  type: str
  sample: 0-1-42
seed_gtid_position:
  description: GTID position the seeded data corresponds to.
  returned: when the replica was seeded
  type: str
  sample: 0-1-40
last_io_errno:
  description: The replica's last IO thread error number, 0 if none.
  returned: always
  type: int
  sample: 0
last_io_error:
  description: The replica's last IO thread error text.
  returned: always
  type: str
  sample: ""
last_sql_errno:
  description: The replica's last SQL thread error number, 0 if none.
  returned: always
  type: int
  sample: 0
last_sql_error:
  description: The replica's last SQL thread error text.
  returned: always
  type: str
  sample: ""
source:
  description: The configured source settings after the run; empty when none.
  returned: always
  type: dict
  sample:
    primary_host: 10.89.20.21
    primary_port: 3306
    primary_user: replication
    primary_ssl: false
    primary_ssl_ca: ""
    primary_ssl_cert: ""
    primary_ssl_key: ""
    primary_ssl_verify_server_cert: false
    gtid_auto_position: true
commands:
  description:
    - Statements and programs run, in order, passwords shown as C(********).
    - In check mode, the ones that would run.
  returned: always
  type: list
  elements: str
  sample:
    - STOP REPLICA
    - >-
      CHANGE MASTER TO MASTER_HOST = '10.89.20.21', MASTER_PORT = 3306,
      MASTER_USER = 'replication', MASTER_PASSWORD = '********', MASTER_SSL = 0,
      MASTER_SSL_CA = '', MASTER_SSL_CERT = '', MASTER_SSL_KEY = '',
      MASTER_SSL_VERIFY_SERVER_CERT = 0, MASTER_USE_GTID = slave_pos
    - START REPLICA
seeded:
  description: Whether the replica was (in check mode, would be) seeded from a dump.
  returned: always
  type: bool
  sample: false
former_primary:
  description:
    - Whether the server held data and transactions of its own but no replication configuration,
      so its history was checked against the primary before it joined.
  returned: always
  type: bool
  sample: false
errant_gtids:
  description: The transactions this server has and the primary lacks, when the module refused to join it.
  returned: on failure, when errant transactions were found
  type: str
  sample: 0-1-1043
password_updated:
  description: Whether the replication password was (in check mode, would be) sent.
  returned: always
  type: bool
  sample: false
read_only:
  description: The replica's read-only variables (C(read_only), and C(super_read_only) on MySQL).
  returned: always
  type: dict
  sample:
    read_only: true
semi_sync_replica:
  description: Whether semi-synchronous replication is enabled on the replica side.
  returned: always
  type: bool
  sample: true
server_version:
  description: The replica's C(VERSION()).
  returned: always
  type: str
  sample: 10.11.6-MariaDB-0+deb12u1-log
sql_flavour:
  description: The row of the SQL table used for this server.
  returned: always
  type: str
  sample: MariaDB 10.5.1+
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nospof.webstack.plugins.module_utils.mysql_connection import (
    mysql_connection_argument_spec,
)
from ansible_collections.nospof.webstack.plugins.module_utils.replica import (
    ReplicaError,
    ReplicaRequest,
    replica_manager_from_params,
)


def argument_spec() -> dict:
    """The module's options plus the shared connection options."""
    spec = mysql_connection_argument_spec()
    spec.update(
        primary_host=dict(type="str"),
        primary_port=dict(type="int", default=3306),
        primary_user=dict(type="str"),
        primary_password=dict(type="str", no_log=True),
        primary_password_update=dict(type="str", choices=["always", "on_create"],
                                     default="always", no_log=False),
        primary_ssl=dict(type="bool", default=False),
        primary_ssl_ca=dict(type="path"),
        primary_ssl_cert=dict(type="path"),
        primary_ssl_key=dict(type="path", no_log=False),
        primary_ssl_verify_server_cert=dict(type="bool", default=False),
        state=dict(type="str", choices=["running", "stopped", "absent"], default="running"),
        seed=dict(type="str", choices=["auto", "force", "never"], default="never"),
        seed_user=dict(type="str"),
        seed_password=dict(type="str", no_log=True),
        seed_timeout=dict(type="int", default=3600),
        wait_for_sync=dict(type="bool", default=False),
        timeout=dict(type="int", default=30),
    )
    return spec


def main() -> None:
    """Run the module."""
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_if=[
            ("state", "running", ("primary_host", "primary_user")),
            ("seed", "auto", ("seed_user",)),
            ("seed", "force", ("seed_user",)),
            ("wait_for_sync", True, ("primary_password",)),
        ],
    )
    try:
        manager = replica_manager_from_params(module.params)
        result = manager.ensure(ReplicaRequest.from_params(module.params), module.check_mode)
    except ReplicaError as error:
        module.fail_json(msg=str(error), **error.result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
