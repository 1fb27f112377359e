# -*- coding: utf-8 -*-
# Copyright: nospof project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: db_topology
short_description: Work out the live database topology from each server's replication state
version_added: 0.2.0
description:
  - Takes one entry per database host, with what M(nospof.webstack.mysql_replication_info) reported, and returns
    the primary (the one writable server, or the source the replicas follow), each host's role, the most advanced
    replica for a failover, and what is wrong.
  - A host that is read-only, replicates from nobody and holds data of its own is a former primary, C(fenced) until
    it is rejoined.
  - Nothing deployed yet means the inventory's primary.
options:
  _input:
    description: One dict per host with keys C(host), C(address), C(unreachable) and C(info) (the module's result).
    type: list
    elements: dict
    required: true
  inventory_primary:
    description: The primary the inventory names, used until a server holds data.
    type: str
    required: true
  max_lag_seconds:
    description: A replica further behind than this is a problem.
    type: float
    default: 10
  semi_sync_expected:
    description: Whether semi-sync being off on the primary is a problem.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Work out the topology
  ansible.builtin.set_fact:
    webstack_db_topology: "{{ db_servers | nospof.webstack.db_topology('db1') }}"
"""

RETURN = r"""
_value:
  description: >-
    Keys primary, primary_address, primary_state (writable, read-only, down, unreachable, planned, split, unknown),
    roles (host to primary, replica, new, fenced, stray, down or unreachable), replicas, replica_addresses, fenced,
    failover_candidate, unsafe, problems, warnings, healthy.
  type: dict
"""

from ansible_collections.nospof.webstack.plugins.module_utils.db_topology import (
    analyse_topology,
    promoted_topology,
)


def db_topology(servers, inventory_primary, max_lag_seconds=10, semi_sync_expected=True):
    """Filter entry point; see DOCUMENTATION."""
    return analyse_topology(list(servers), inventory_primary, float(max_lag_seconds),
                            bool(semi_sync_expected))


def db_topology_promote(topology, new_primary, replicas, fenced=None):
    """The topology once new_primary takes the writes and replicas follow it."""
    return promoted_topology(dict(topology), new_primary, list(replicas), list(fenced or []))


class FilterModule:
    """nospof.webstack database topology filters."""

    def filters(self):
        return {"db_topology": db_topology, "db_topology_promote": db_topology_promote}
