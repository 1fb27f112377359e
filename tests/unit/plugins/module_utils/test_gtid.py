"""GTID position math for both formats: parsing, covers, missing, progress and counts."""

from __future__ import annotations

import pytest
from ansible_collections.nospof.webstack.plugins.module_utils.gtid import (
    GTID_FORMAT_MARIADB,
    GTID_FORMAT_MYSQL,
    GtidError,
    MariadbGtidState,
    MysqlGtidSet,
    gtid_ahead,
    gtid_compare_progress,
    gtid_covers,
    gtid_missing,
    gtid_originated_by,
    gtid_transaction_count,
    parse_gtid,
)

MARIADB = GTID_FORMAT_MARIADB
MYSQL = GTID_FORMAT_MYSQL
UUID_A = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
UUID_B = "8bc0c1a4-0b4f-11ef-8d2c-0242ac120002"


# MariaDB

def test_mariadb_parse_keeps_the_highest_seq_per_domain_and_server():
    state = parse_gtid(" 1-2-5, 0-1-100,0-2-7,0-1-90 ", MARIADB)

    assert isinstance(state, MariadbGtidState)
    assert state.last_seq == {(0, 1): 100, (0, 2): 7, (1, 2): 5}
    assert str(state) == "0-1-100,0-2-7,1-2-5"
    assert state.domain_seq == {0: 100, 1: 5}


@pytest.mark.parametrize("text", ["", None, " , "])
def test_mariadb_empty_positions(text):
    assert str(parse_gtid(text, MARIADB)) == ""
    assert gtid_transaction_count(text, MARIADB) == 0


@pytest.mark.parametrize("text", ["0-1", "0-1-x", "a-1-2", "0-1-2-3", "0--1-2"])
def test_mariadb_malformed_text_is_named(text):
    with pytest.raises(GtidError, match="not a MariaDB GTID"):
        parse_gtid(text, MARIADB)


@pytest.mark.parametrize("have, want, covered", [
    ("0-1-100", "0-1-100", True),
    ("0-1-100", "0-1-99", True),
    ("0-1-100,0-2-150", "0-1-100", True),
    ("0-1-100", "", True),
    ("", "0-1-1", False),
    ("0-1-100", "0-1-101", False),
    ("0-1-100,1-1-5", "0-1-100,1-1-6", False),
])
def test_mariadb_covers(have, want, covered):
    assert gtid_covers(have, want, MARIADB) is covered


def test_mariadb_errant_write_of_a_failed_primary_is_not_hidden_by_a_higher_seq():
    new_primary = "0-1-100,0-2-150"  # promoted at 0-1-100, then wrote up to 0-2-150
    failed_primary = "0-1-101"  # wrote 0-1-101 that never replicated

    assert not gtid_covers(new_primary, failed_primary, MARIADB)
    assert gtid_missing(new_primary, failed_primary, MARIADB) == "0-1-101"
    assert gtid_missing(new_primary, "0-1-100", MARIADB) == ""


def test_mariadb_missing_lists_every_uncovered_entry():
    assert gtid_missing("0-1-10,1-3-4", "0-1-12,0-2-3,1-3-4,2-4-1", MARIADB) == "0-1-12,0-2-3,2-4-1"


@pytest.mark.parametrize("a, b, expected", [
    ("0-1-100", "0-1-100", 0),
    ("0-1-101", "0-1-100", 1),
    ("0-1-100", "0-1-101", -1),
    ("0-1-100,1-1-5", "0-1-100", 1),
    ("0-2-120", "0-1-100,0-2-110", 1),  # seq per domain, whichever server wrote it
    ("0-1-100,1-1-5", "0-1-90,1-1-10", 1),  # each leads a domain: more transactions wins
    ("0-1-100,1-1-5", "0-1-95,1-1-10", 0),
    ("", "0-1-1", -1),
])
def test_mariadb_progress_compares_seq_per_domain(a, b, expected):
    assert gtid_compare_progress(a, b, MARIADB) == expected
    assert gtid_compare_progress(b, a, MARIADB) == -expected


def test_mariadb_ahead_needs_every_domain_at_or_past():
    assert gtid_ahead("0-1-10,1-1-5", "0-1-10,1-1-4", MARIADB)
    assert not gtid_ahead("0-1-10,1-1-5", "0-1-10,1-1-5", MARIADB)
    assert not gtid_ahead("0-1-11", "0-1-10,1-1-5", MARIADB)


def test_mariadb_transaction_count_sums_the_highest_seq_per_domain():
    assert gtid_transaction_count("0-1-100,0-2-150,1-1-5", MARIADB) == 155


# MySQL

def test_mysql_parse_merges_and_prints_like_the_server():
    gtid_set = parse_gtid("%s:7-9:1-5:6,\n%s:3:1-2" % (UUID_A.upper(), UUID_B), MYSQL)

    assert isinstance(gtid_set, MysqlGtidSet)
    assert gtid_set.intervals == {(UUID_A, ""): ((1, 9),), (UUID_B, ""): ((1, 3),)}
    assert str(gtid_set) == "%s:1-9,%s:1-3" % (UUID_A, UUID_B)


def test_mysql_tagged_gtids():
    gtid_set = parse_gtid("%s:1-5:Switch:1-2:4,%s:6" % (UUID_A, UUID_A), MYSQL)

    assert gtid_set.intervals == {(UUID_A, ""): ((1, 6),), (UUID_A, "switch"): ((1, 2), (4, 4))}
    assert str(gtid_set) == "%s:1-6:switch:1-2:4" % UUID_A
    assert gtid_transaction_count(gtid_set, MYSQL) == 9


@pytest.mark.parametrize("text, message", [
    ("not-a-uuid:1-5", "not a MySQL GTID set entry"),
    (UUID_A, "not a MySQL GTID set entry"),
    ("%s:5-3" % UUID_A, "must run upwards"),
    ("%s:0-3" % UUID_A, "must run upwards"),
    ("%s:1-x" % UUID_A, "neither an interval nor a tag"),
])
def test_mysql_malformed_text_is_named(text, message):
    with pytest.raises(GtidError, match=message):
        parse_gtid(text, MYSQL)


@pytest.mark.parametrize("have, want, covered, missing", [
    ("A:1-10", "A:1-10", True, ""),
    ("A:1-10", "A:3-4:9", True, ""),
    ("A:1-10,B:1-3", "A:1-5", True, ""),
    ("A:1-10", "", True, ""),
    ("A:1-10", "A:1-12", False, "A:11-12"),
    ("A:1-4:6-10", "A:1-10", False, "A:5"),
    ("A:1-10", "A:1-10,B:1-2", False, "B:1-2"),
    ("A:2-3:7-8", "A:1-10", False, "A:1:4-6:9-10"),
    ("", "A:1-3", False, "A:1-3"),
])
def test_mysql_covers_and_missing(have, want, covered, missing):
    def named(text: str) -> str:
        return text.replace("A", UUID_A).replace("B", UUID_B)

    assert gtid_covers(named(have), named(want), MYSQL) is covered
    assert gtid_missing(named(have), named(want), MYSQL) == named(missing)


@pytest.mark.parametrize("a, b, expected", [
    ("A:1-10", "A:1-10", 0),
    ("A:1-11", "A:1-10", 1),
    ("A:1-10,B:1", "A:1-10", 1),
    ("A:1-8", "A:1-10", -1),
    ("A:1-10,B:1", "A:1-12", -1),  # diverged: more transactions wins
    ("A:1-10,B:1-3", "A:1-12", 1),
    ("A:1-10,B:1-2", "A:1-12", 0),
])
def test_mysql_progress_is_set_inclusion_then_count(a, b, expected):
    first, second = (text.replace("A", UUID_A).replace("B", UUID_B) for text in (a, b))

    assert gtid_compare_progress(first, second, MYSQL) == expected
    assert gtid_compare_progress(second, first, MYSQL) == -expected


def test_mysql_transaction_count():
    assert gtid_transaction_count("%s:1-5:7-9,%s:1-3" % (UUID_A, UUID_B), MYSQL) == 11


# Both

def test_transactions_a_server_wrote():
    assert gtid_originated_by("0-1-100,0-2-150,1-2-5", "2", MARIADB) == "0-2-150,1-2-5"
    assert gtid_originated_by("0-1-100", 3, MARIADB) == ""
    mysql = "%s:1-5,%s:1-3:7" % (UUID_A, UUID_B)
    assert gtid_originated_by(mysql, UUID_B.upper(), MYSQL) == "%s:1-3:7" % UUID_B
    assert gtid_originated_by(mysql, "00000000-0000-0000-0000-000000000000", MYSQL) == ""


def test_parsed_positions_are_accepted_as_they_are():
    state = parse_gtid("0-1-5", MARIADB)

    assert parse_gtid(state, MARIADB) is state
    assert gtid_covers(state, "0-1-4", MARIADB)


def test_unknown_format_lists_the_known_ones():
    with pytest.raises(GtidError, match="Unknown GTID format 'postgres'; known: mariadb, mysql"):
        parse_gtid("0-1-5", "postgres")


def test_a_position_of_the_other_format_is_not_text():
    with pytest.raises(GtidError, match="must be text"):
        parse_gtid(parse_gtid("0-1-5", MARIADB), MYSQL)
