# -*- coding: utf-8 -*-
# Copyright: nospof project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GTID position math for MariaDB (domain-server-seq lists) and MySQL (GTID sets), in pure Python.

The row of replication_sql.py for a server names its ``gtid_format``; every function
here takes that format, so callers never test the flavour.

MariaDB: ``covers`` compares the gtid_binlog_state form, the last seq per (domain,
server_id), and not only the last seq per domain. A failed primary (server 1) may
have written 0-1-101 that never reached any replica; the new primary (server 2)
then writes 0-2-101, 0-2-102, ... Per domain, 102 >= 101 looks covered, yet 0-1-101
exists only on the failed primary: it is an errant transaction, and replicating
from the new primary would silently diverge (or stop under gtid_strict_mode). Per
(domain, server_id), the new primary's 0-1-100 is behind 0-1-101, so it is caught.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Tuple, Union

GTID_FORMAT_MARIADB = "mariadb"
GTID_FORMAT_MYSQL = "mysql"
GTID_FORMATS = (GTID_FORMAT_MARIADB, GTID_FORMAT_MYSQL)

# MySQL 8.3+ tags name a sub-set of a server's transactions: uuid:1-5:tag:1-3
_MYSQL_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_MYSQL_TAG = re.compile(r"^[a-z_][a-z0-9_]{0,31}$")
_MYSQL_INTERVAL = re.compile(r"^(\d+)(?:-(\d+))?$")

Interval = Tuple[int, int]


class GtidError(ValueError):
    """A GTID text that cannot be parsed, or an unknown GTID format."""


@dataclass(frozen=True)
class MariadbGtidState:
    """MariaDB: the last seq per (domain, server_id); a gtid_binlog_pos is the one-per-domain case."""

    last_seq: Dict[Tuple[int, int], int]

    @classmethod
    def parse(cls, text: str) -> "MariadbGtidState":
        """Parse 0-1-100,1-2-5; a repeated (domain, server_id) keeps its highest seq."""
        last_seq: Dict[Tuple[int, int], int] = {}
        for entry in _entries(text):
            parts = entry.split("-")
            if len(parts) != 3 or not all(part.isdigit() for part in parts):
                raise GtidError("%r is not a MariaDB GTID (domain-server_id-seq) in %r"
                                % (entry, text))
            domain, server_id, seq = (int(part) for part in parts)
            last_seq[(domain, server_id)] = max(seq, last_seq.get((domain, server_id), seq))
        return cls(last_seq)

    def __str__(self) -> str:
        return ",".join("%d-%d-%d" % (domain, server_id, seq)
                        for (domain, server_id), seq in sorted(self.last_seq.items()))

    @property
    def domain_seq(self) -> Dict[int, int]:
        """Highest seq per domain: how far this server got in each domain."""
        highest: Dict[int, int] = {}
        for key, seq in self.last_seq.items():
            domain = key[0]
            highest[domain] = max(seq, highest.get(domain, seq))
        return highest

    def covers(self, want: "MariadbGtidState") -> bool:
        """Every (domain, server_id) of want is here with the same seq or a higher one."""
        return not self.missing(want).last_seq

    def missing(self, want: "MariadbGtidState") -> "MariadbGtidState":
        """The entries of want that this state does not cover."""
        return MariadbGtidState({key: seq for key, seq in want.last_seq.items()
                                 if self.last_seq.get(key, -1) < seq})

    def originated_by(self, origin: str) -> "MariadbGtidState":
        """The entries written by server_id origin."""
        return MariadbGtidState({key: seq for key, seq in self.last_seq.items()
                                 if str(key[1]) == str(origin).strip()})

    def is_ahead_of(self, other: "MariadbGtidState") -> bool:
        """At or past other in every domain, and past it in at least one."""
        mine, theirs = self.domain_seq, other.domain_seq
        return (all(mine.get(domain, 0) >= seq for domain, seq in theirs.items())
                and any(seq > theirs.get(domain, 0) for domain, seq in mine.items()))

    @property
    def transaction_count(self) -> int:
        """Sum of the highest seq per domain (a domain's seq counts its transactions from 1)."""
        return sum(self.domain_seq.values())


@dataclass(frozen=True)
class MysqlGtidSet:
    """MySQL: per (source uuid, tag) the executed transaction numbers, as merged closed intervals."""

    intervals: Dict[Tuple[str, str], Tuple[Interval, ...]]

    @classmethod
    def parse(cls, text: str) -> "MysqlGtidSet":
        """Parse uuid:1-5:7-9,uuid2:1-3 (newlines, as @@gtid_executed prints them, are fine)."""
        collected: Dict[Tuple[str, str], List[Interval]] = {}
        for entry in _entries(text):
            parts = [part.strip() for part in entry.split(":")]
            uuid = parts[0].lower()
            if not _MYSQL_UUID.match(uuid) or len(parts) < 2:
                raise GtidError("%r is not a MySQL GTID set entry (uuid:interval...) in %r"
                                % (entry, text))
            tag = ""
            for part in parts[1:]:
                interval = _MYSQL_INTERVAL.match(part)
                if interval:
                    start = int(interval.group(1))
                    end = int(interval.group(2) or start)
                    if not 1 <= start <= end:
                        raise GtidError("Interval %r in %r must run upwards from 1" % (part, text))
                    collected.setdefault((uuid, tag), []).append((start, end))
                elif _MYSQL_TAG.match(part.lower()):
                    tag = part.lower()
                else:
                    raise GtidError("%r is neither an interval nor a tag in %r" % (part, text))
        return cls({key: _merge(found) for key, found in collected.items()})

    def __str__(self) -> str:
        by_uuid: Dict[str, List[str]] = {}
        for uuid, tag in sorted(self.intervals):
            parts = by_uuid.setdefault(uuid, [uuid])
            if tag:
                parts.append(tag)
            parts.extend(str(start) if start == end else "%d-%d" % (start, end)
                         for start, end in self.intervals[(uuid, tag)])
        return ",".join(":".join(parts) for parts in by_uuid.values())

    def covers(self, want: "MysqlGtidSet") -> bool:
        """Every transaction of want is in this set."""
        return not self.missing(want).intervals

    def missing(self, want: "MysqlGtidSet") -> "MysqlGtidSet":
        """The transactions of want that are not in this set."""
        left = {key: _subtract(ranges, self.intervals.get(key, ()))
                for key, ranges in want.intervals.items()}
        return MysqlGtidSet({key: ranges for key, ranges in left.items() if ranges})

    def originated_by(self, origin: str) -> "MysqlGtidSet":
        """The transactions of source uuid origin."""
        uuid = str(origin).strip().lower()
        return MysqlGtidSet({key: ranges for key, ranges in self.intervals.items() if key[0] == uuid})

    def is_ahead_of(self, other: "MysqlGtidSet") -> bool:
        """A strict superset of other."""
        return self.covers(other) and self != other

    @property
    def transaction_count(self) -> int:
        """Number of transactions in the set."""
        return sum(end - start + 1 for ranges in self.intervals.values() for start, end in ranges)


GtidPosition = Union[MariadbGtidState, MysqlGtidSet]
_PARSERS = {GTID_FORMAT_MARIADB: MariadbGtidState, GTID_FORMAT_MYSQL: MysqlGtidSet}


def _entries(text: str) -> List[str]:
    """The comma-separated entries of a GTID text, blanks dropped."""
    return [entry.strip() for entry in (text or "").split(",") if entry.strip()]


def _merge(ranges: List[Interval]) -> Tuple[Interval, ...]:
    """Sorted intervals with overlapping and adjacent ones joined."""
    merged: List[Interval] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return tuple(merged)


def _subtract(ranges: Tuple[Interval, ...], removed: Tuple[Interval, ...]) -> Tuple[Interval, ...]:
    """The parts of ranges outside removed (both merged)."""
    left: List[Interval] = []
    for start, end in ranges:
        for cut_start, cut_end in removed:
            if cut_end < start or cut_start > end:
                continue
            if cut_start > start:
                left.append((start, cut_start - 1))
            start = cut_end + 1
            if start > end:
                break
        if start <= end:
            left.append((start, end))
    return tuple(left)


def parse_gtid(text: Union[str, GtidPosition, None], gtid_format: str) -> GtidPosition:
    """The parsed position or set; an already parsed one is returned as it is."""
    parser = _PARSERS.get(gtid_format)
    if parser is None:
        raise GtidError("Unknown GTID format %r; known: %s" % (gtid_format, ", ".join(GTID_FORMATS)))
    if isinstance(text, parser):
        return text
    if text is not None and not isinstance(text, str):
        raise GtidError("A %s GTID must be text, not %r" % (gtid_format, text))
    return parser.parse(text or "")


def gtid_covers(have: Union[str, GtidPosition], want: Union[str, GtidPosition],
                gtid_format: str) -> bool:
    """Whether every transaction in want is in have."""
    return parse_gtid(have, gtid_format).covers(parse_gtid(want, gtid_format))  # type: ignore[arg-type]


def gtid_missing(have: Union[str, GtidPosition], want: Union[str, GtidPosition],
                 gtid_format: str) -> str:
    """What of want is not in have, as GTID text ("" if nothing).

    MariaDB names the uncovered (domain, server_id) entries of want with want's last seq.
    """
    missing = parse_gtid(have, gtid_format).missing(parse_gtid(want, gtid_format))  # type: ignore[arg-type]
    return str(missing)


def gtid_originated_by(text: Union[str, GtidPosition], origin: str, gtid_format: str) -> str:
    """The part of text a given server wrote (MariaDB: its server_id; MySQL: its server_uuid)."""
    return str(parse_gtid(text, gtid_format).originated_by(origin))


def gtid_ahead(a: Union[str, GtidPosition], b: Union[str, GtidPosition], gtid_format: str) -> bool:
    """Whether a is strictly further than b (MariaDB: per domain; MySQL: strict superset)."""
    return parse_gtid(a, gtid_format).is_ahead_of(parse_gtid(b, gtid_format))  # type: ignore[arg-type]


def gtid_compare_progress(a: Union[str, GtidPosition], b: Union[str, GtidPosition],
                          gtid_format: str) -> int:
    """1 when a is further than b, -1 when b is, 0 when level; for two replicas of one primary.

    When neither is ahead (they diverged, or each leads in another MariaDB domain),
    the one with more transactions counts as further.
    """
    first, second = parse_gtid(a, gtid_format), parse_gtid(b, gtid_format)
    if first.is_ahead_of(second):  # type: ignore[arg-type]
        return 1
    if second.is_ahead_of(first):  # type: ignore[arg-type]
        return -1
    difference = first.transaction_count - second.transaction_count
    return (difference > 0) - (difference < 0)


def gtid_transaction_count(text: Union[str, GtidPosition], gtid_format: str) -> int:
    """Transactions in a GTID set (MariaDB: the highest seq per domain, summed)."""
    return parse_gtid(text, gtid_format).transaction_count
