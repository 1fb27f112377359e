# -*- coding: utf-8 -*-
# Copyright: nospof project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Works out the live database topology from what each server reports.

The inventory only names the primary the site starts with. After a switchover or
a failover the servers themselves are the truth: the one writable server is the
primary, a replica follows it, and a former primary that came back read-only and
replicates from nobody is fenced until an operator rejoins it. Every playbook
(site, status, switchover, failover, rejoin) reads the topology through here, so
they agree on it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible_collections.nospof.webstack.plugins.module_utils.gtid import (
    gtid_compare_progress,
)

PRIMARY = "primary"
REPLICA = "replica"
NEW = "new"
FENCED = "fenced"
STRAY = "stray"
DOWN = "down"
UNREACHABLE = "unreachable"


def switched_on(value: Any) -> bool:
    """A server switch as reported: a bool, or ON/OFF."""
    return value is True or str(value).upper() in ("ON", "1", "YES", "TRUE")


class ServerView:
    """One database host as the controller sees it."""

    def __init__(self, host: str, address: str, unreachable: bool,
                 info: Optional[Dict[str, Any]]) -> None:
        self.host = host
        self.address = address
        self.unreachable = unreachable
        self.info = info or {}

    @property
    def running(self) -> bool:
        return not self.unreachable and bool(self.info.get("reachable"))

    @property
    def writable(self) -> bool:
        return self.running and not self.info.get("read_only", True)

    @property
    def replica(self) -> Optional[Dict[str, Any]]:
        return self.info.get("replica") if self.running else None

    @property
    def replica_threads_running(self) -> bool:
        replica = self.replica or {}
        return replica.get("io_running") == "Yes" and replica.get("sql_running") == "Yes"

    @property
    def has_history(self) -> bool:
        """Holds data of its own: a former primary, never a new empty server."""
        return bool(self.info.get("has_user_schemas"))

    @property
    def blank(self) -> bool:
        """A fresh install: running, but with no data and no replication of its own.
        Debian's package starts the server writable; that claims nothing."""
        return self.running and not self.has_history and not self.replica

    @property
    def received_position(self) -> str:
        replica = self.replica or {}
        return replica.get("gtid_received") or self.info.get("gtid_applied") or ""


class TopologyAnalysis:
    """Classifies every host, finds the primary, and lists what is wrong."""

    def __init__(self, servers: List[ServerView], inventory_primary: str,
                 max_lag_seconds: float = 10, semi_sync_expected: bool = True) -> None:
        self.servers = {server.host: server for server in servers}
        self.order = [server.host for server in servers]
        self.inventory_primary = inventory_primary
        self.max_lag_seconds = max_lag_seconds
        self.semi_sync_expected = semi_sync_expected
        self.host_by_address = {}
        for server in servers:
            self.host_by_address[server.address] = server.host
            self.host_by_address[server.host] = server.host
        self.unsafe: List[str] = []
        self.problems: List[str] = []
        self.warnings: List[str] = []

    def source_of(self, server: ServerView) -> Optional[str]:
        """Inventory host a replica follows (its source address if not in the inventory)."""
        replica = server.replica
        if not replica:
            return None
        source = replica.get("source_host") or ""
        return self.host_by_address.get(source, source)

    def find_primary(self) -> Dict[str, Any]:
        writable = [host for host in self.order
                    if self.servers[host].writable and not self.servers[host].blank]
        if len(writable) > 1:
            self.unsafe.append(
                "%s are all writable: more than one server takes writes (split brain). "
                "Make all but the real primary read-only (SET GLOBAL read_only = ON) and "
                "compare their GTID positions before anything else runs." % ", ".join(writable))
            return {"host": None, "state": "split"}
        if writable:
            return {"host": writable[0], "state": "writable"}
        followed = sorted({self.source_of(self.servers[host]) for host in self.order
                           if self.servers[host].replica} - {None})
        if len(followed) == 1 and followed[0] in self.servers:
            host = followed[0]
            server = self.servers[host]
            if server.unreachable:
                return {"host": host, "state": UNREACHABLE}
            if not server.running:
                return {"host": host, "state": DOWN}
            return {"host": host, "state": "read-only"}
        if len(followed) > 1:
            self.unsafe.append(
                "No server is writable and the replicas follow different sources (%s)."
                % ", ".join(followed))
            return {"host": None, "state": "unknown"}
        if not any(self.servers[host].running and self.servers[host].has_history
                   for host in self.order):
            # Nothing deployed yet (or nothing holds data): the inventory decides.
            return {"host": self.inventory_primary, "state": "planned"}
        primary = self.servers.get(self.inventory_primary)
        if primary is not None and primary.running and not primary.replica:
            return {"host": self.inventory_primary, "state": "read-only"}
        self.unsafe.append(
            "No server is writable and no replica names a source, so the primary cannot "
            "be told apart from a fenced server.")
        return {"host": None, "state": "unknown"}

    def classify(self, primary: Optional[str]) -> Dict[str, str]:
        roles = {}
        for host in self.order:
            server = self.servers[host]
            if host == primary:
                roles[host] = PRIMARY
            elif server.unreachable:
                roles[host] = UNREACHABLE
            elif not server.running:
                roles[host] = NEW if not server.info.get("installed", False) else DOWN
            elif server.replica:
                roles[host] = REPLICA if self.source_of(server) == primary else STRAY
            elif server.has_history and primary is not None:
                roles[host] = FENCED
            else:
                roles[host] = NEW
        return roles

    def check_health(self, primary: Dict[str, Any], roles: Dict[str, str]) -> None:
        host = primary["host"]
        state = primary["state"]
        replicas = [name for name, role in roles.items() if role == REPLICA]
        if host and state in (DOWN, UNREACHABLE):
            self.unsafe.append(
                "The primary %s is %s and the replicas still follow it: run "
                "playbooks/db_failover.yml to promote the most advanced replica." % (host, state))
        elif host and state == "read-only":
            self.problems.append(
                "The primary %s is read-only, so writes fail: a converge (site.yml) "
                "opens it again." % host)
        if host and state == "writable" and self.semi_sync_expected and replicas:
            semi_sync = self.servers[host].info.get("semi_sync") or {}
            # Semi-sync turns active again with the first commit after a
            # semi-sync replica connected, so a connected one is enough.
            if not switched_on(semi_sync.get("primary_active")) and not semi_sync.get("primary_clients"):
                self.problems.append(
                    "Semi-sync is off on the primary %s and no semi-sync replica is connected: "
                    "a commit acknowledged now may exist on the primary only." % host)
        for name in self.order:
            role = roles[name]
            server = self.servers[name]
            if role == REPLICA:
                self.check_replica(name, server)
            elif role == STRAY:
                self.problems.append(
                    "%s replicates from %s, not from the primary %s: a converge re-points it."
                    % (name, self.source_of(server), host))
            elif role == FENCED:
                self.problems.append(
                    "%s is fenced (read-only, replicating from nobody, with data of its own: a "
                    "former primary). Rejoin it: ansible-playbook playbooks/db_rejoin.yml "
                    "-e db_rejoin_host=%s" % (name, name))
            elif role == DOWN:
                self.problems.append("%s: the database server is not running." % name)
            elif role == UNREACHABLE:
                self.problems.append("%s: the host cannot be reached over SSH." % name)
            elif role == NEW:
                self.warnings.append("%s has no database yet: a converge seeds it as a replica." % name)

    def check_replica(self, name: str, server: ServerView) -> None:
        replica = server.replica or {}
        if not server.replica_threads_running:
            errors = "; ".join(text for text in (replica.get("last_io_error"),
                                                 replica.get("last_sql_error")) if text)
            self.problems.append(
                "%s: replication threads IO=%s SQL=%s%s." % (
                    name, replica.get("io_running"), replica.get("sql_running"),
                    " (%s)" % errors if errors else ""))
            return
        lag = replica.get("seconds_behind")
        if lag is not None and lag > self.max_lag_seconds:
            self.problems.append("%s is %s s behind the primary (more than %s s)."
                                 % (name, lag, self.max_lag_seconds))
        if not server.info.get("read_only", True):
            self.problems.append("%s is a replica but writable." % name)

    def failover_candidate(self, primary: Optional[str], roles: Dict[str, str]) -> Optional[str]:
        """The running replica that received the most of the primary's transactions."""
        best = None
        for name in self.order:
            server = self.servers[name]
            if roles[name] != REPLICA or not server.running:
                continue
            if best is None or gtid_compare_progress(
                    server.received_position, self.servers[best].received_position,
                    server.info.get("gtid_format") or "mariadb") > 0:
                best = name
        return best

    def analyse(self) -> Dict[str, Any]:
        primary = self.find_primary()
        roles = self.classify(primary["host"])
        self.check_health(primary, roles)
        host = primary["host"]
        return {
            "primary": host,
            "primary_address": self.servers[host].address if host in self.servers else None,
            "primary_state": primary["state"],
            "roles": roles,
            "addresses": {name: self.servers[name].address for name in self.order},
            "replicas": [name for name in self.order if roles[name] == REPLICA],
            "replica_addresses": [self.servers[name].address for name in self.order
                                  if roles[name] == REPLICA],
            "fenced": [name for name in self.order if roles[name] == FENCED],
            "failover_candidate": self.failover_candidate(host, roles),
            "unsafe": self.unsafe,
            "problems": self.unsafe + self.problems,
            "warnings": self.warnings,
            "healthy": not (self.unsafe or self.problems),
        }


def analyse_topology(servers: List[Dict[str, Any]], inventory_primary: str,
                     max_lag_seconds: float = 10, semi_sync_expected: bool = True) -> Dict[str, Any]:
    """Entry point: servers is a list of {host, address, unreachable, info}."""
    views = [ServerView(item["host"], item.get("address") or item["host"],
                        bool(item.get("unreachable")), item.get("info"))
             for item in servers]
    return TopologyAnalysis(views, inventory_primary, max_lag_seconds,
                            semi_sync_expected).analyse()


def promoted_topology(topology: Dict[str, Any], new_primary: str, replicas: List[str],
                      fenced: Optional[List[str]] = None) -> Dict[str, Any]:
    """The topology once new_primary takes the writes and replicas follow it."""
    addresses = topology.get("addresses") or {}
    roles = dict(topology.get("roles") or {})
    fenced_hosts = sorted(set(topology.get("fenced") or []) | set(fenced or []))
    roles.update({host: REPLICA for host in replicas})
    roles.update({host: FENCED for host in fenced_hosts})
    roles[new_primary] = PRIMARY
    result = dict(topology)
    result.update({
        "primary": new_primary,
        "primary_address": addresses.get(new_primary, new_primary),
        "primary_state": "writable",
        "roles": roles,
        "replicas": list(replicas),
        "replica_addresses": [addresses.get(host, host) for host in replicas],
        "fenced": fenced_hosts,
        "failover_candidate": None,
    })
    return result
