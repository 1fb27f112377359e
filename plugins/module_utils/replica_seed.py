# -*- coding: utf-8 -*-
# Copyright: nospof project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Seed a replica: stream a consistent dump of the primary into it, then set its GTID position.

The dump uses --single-transaction, so the primary stays writable. The load runs
with sql_log_bin off after a binary log reset, so the replica's own GTID history
stays empty and replication continues exactly where the dump was taken. A replica
that holds data (seed=force) has its user schemas dropped first.

A marker schema exists on the replica from the start of the load until its GTID
position is set. A server that still has it holds part of a dump and no position
(a load cut off, a timeout); replicating from there would replay what it already
holds, so it must be seeded again.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
from typing import IO, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.nospof.webstack.plugins.module_utils.mysql_connection import (
    MysqlConnectionSettings,
)
from ansible_collections.nospof.webstack.plugins.module_utils.replication_sql import (
    ReplicationSql,
    Statement,
)

CHUNK_BYTES = 1 << 20
ERROR_TAIL_BYTES = 2000
OPTION_FILE_SHOWN_AS = "<private option file with the password>"
INCOMPLETE_SEED_MARKER = "nospof_seed_incomplete"
# Created before the binary log reset (which then forgets it), dropped unlogged
# once the position is set, so the replica's own GTID history stays empty.
MARK_SEED_STARTED = (Statement("CREATE DATABASE IF NOT EXISTS `%s`" % INCOMPLETE_SEED_MARKER),)
MARK_SEED_FINISHED = (Statement("SET SESSION sql_log_bin = 0"),
                      Statement("DROP DATABASE IF EXISTS `%s`" % INCOMPLETE_SEED_MARKER),
                      Statement("SET SESSION sql_log_bin = 1"))


class SeedError(Exception):
    """The dump or the load failed, or took too long."""


class GtidPositionScanner:
    """Finds the last GTID position a dump states, while the dump streams past."""

    def __init__(self, pattern: Optional[str]) -> None:
        self.pattern = re.compile(pattern.encode(), re.MULTILINE) if pattern else None
        self.position: Optional[str] = None
        self._partial_line = b""

    def feed(self, chunk: bytes) -> None:
        """Scan the complete lines seen so far; keep an unfinished last line for later."""
        if self.pattern is None:
            return
        text = self._partial_line + chunk
        end = text.rfind(b"\n") + 1
        self._partial_line = text[end:]
        for match in self.pattern.finditer(text, 0, end):
            self.position = match.group(1).decode()

    def finish(self) -> None:
        """Scan the final line if the dump did not end with a newline."""
        if self._partial_line:
            self.feed(b"\n")


def drop_schema_statement(schema: str) -> Statement:
    """DROP DATABASE with the name quoted as an identifier."""
    return Statement("DROP DATABASE `%s`" % schema.replace("`", "``"))


def option_file_text(password: Optional[str]) -> str:
    """A [client] option file carrying only the password (kept off the command line)."""
    lines = ["[client]"]
    if password is not None:
        escaped = password.replace("\\", "\\\\").replace('"', '\\"')
        lines.append('password="%s"' % escaped)
    return "\n".join(lines) + "\n"


class ReplicaSeeder:
    """Streams <dump program> from the primary into <client program> on the replica."""

    def __init__(self, sql: ReplicationSql, primary: MysqlConnectionSettings,
                 replica: MysqlConnectionSettings, timeout: float,
                 find_program: Callable[[str], Optional[str]] = shutil.which,
                 verify_primary_identity: bool = False) -> None:
        self.sql = sql
        self.primary = primary
        self.replica = replica
        self.timeout = timeout
        self.find_program = find_program
        self.verify_primary_identity = verify_primary_identity

    def programs(self) -> Tuple[str, str]:
        """Paths of the dump and client programs, or SeedError naming what to install."""
        dump = next(filter(None, map(self.find_program, self.sql.dump_programs)), None)
        client = next(filter(None, map(self.find_program, self.sql.client_programs)), None)
        if not dump or not client:
            raise SeedError("Seeding needs %s and %s on the replica host (package mariadb-client "
                            "or mysql-client)" % (" or ".join(self.sql.dump_programs),
                                                  " or ".join(self.sql.client_programs)))
        return dump, client

    def _tls_options(self, settings: MysqlConnectionSettings, verify: bool,
                     refuse_tls: bool) -> List[str]:
        """Client TLS options for a connection; refuse_tls makes plain text explicit."""
        if not settings.uses_tls:
            return [self.sql.client_no_ssl_option] if refuse_tls else []
        options = [self.sql.client_ssl_option]
        for flag, path in (("--ssl-ca", settings.ca_cert), ("--ssl-cert", settings.client_cert),
                           ("--ssl-key", settings.client_key)):
            if path:
                options.append("%s=%s" % (flag, path))
        if verify:
            options.append(self.sql.client_ssl_verify_option)
        return options

    @staticmethod
    def _address_options(settings: MysqlConnectionSettings) -> List[str]:
        """Where a client program connects, and as whom."""
        if settings.unix_socket:
            address = ["--socket=%s" % settings.unix_socket]
        else:
            address = ["--host=%s" % settings.host, "--port=%s" % settings.port]
        return address + ["--user=%s" % settings.user]

    def dump_command(self, program: str, option_file: str) -> List[str]:
        """The dump command line (the password comes from option_file)."""
        return ([program, "--defaults-file=%s" % option_file]
                + self._address_options(self.primary)
                + self._tls_options(self.primary, self.verify_primary_identity, refuse_tls=True)
                + list(self.sql.dump_options))

    def client_command(self, program: str, option_file: str) -> List[str]:
        """The load command line (the password comes from option_file)."""
        return ([program, "--defaults-file=%s" % option_file]
                + self._address_options(self.replica)
                + ["--connect-timeout=%s" % self.replica.connect_timeout]
                + self._tls_options(self.replica, bool(self.replica.check_hostname),
                                    refuse_tls=False))

    def pipeline_display(self, dump: str, client: str) -> str:
        """dump | client, as shown in the module result."""
        def shown(command: List[str]) -> str:
            command = [command[0], "--defaults-file=%s" % OPTION_FILE_SHOWN_AS] + command[2:]
            return " ".join(shlex.quote(part) for part in command)
        return "%s | %s" % (shown(self.dump_command(dump, "")), shown(self.client_command(client, "")))

    def planned_commands(self, drop_schemas: Sequence[str] = ()) -> List[str]:
        """What seed() runs, for check mode."""
        dump = self.sql.dump_programs[0]
        client = self.sql.client_programs[0]
        commands = [drop_schema_statement(schema).display() for schema in drop_schemas]
        commands += [statement.display() for statement in MARK_SEED_STARTED]
        commands += [Statement(self.sql.reset_binary_logs).display(),
                     self.pipeline_display(dump, client)]
        if self.sql.set_gtid_position:
            commands.append(Statement(self.sql.set_gtid_position,
                                      ("<GTID position from the dump>",)).display())
        return commands + [statement.display() for statement in MARK_SEED_FINISHED]

    def seed(self, execute: Callable[[Statement], None],
             global_variables: Callable[[Tuple[str, ...]], Dict[str, str]],
             ran: List[str], drop_schemas: Sequence[str] = ()) -> None:
        """Drop drop_schemas, reset the binary log, stream the dump in, set the GTID position."""
        dump, client = self.programs()

        def run(statement: Statement) -> None:
            execute(statement)
            ran.append(statement.display())

        blocking = [name for name, value
                    in global_variables(self.sql.admin_blocking_read_only_variables).items()
                    if value == "ON"]
        for name in blocking:
            run(Statement("SET GLOBAL %s = OFF" % name))
        try:
            for schema in drop_schemas:
                run(drop_schema_statement(schema))
            for statement in MARK_SEED_STARTED:
                run(statement)
            run(Statement(self.sql.reset_binary_logs))
            position = self.stream(dump, client)
            ran.append(self.pipeline_display(dump, client))
            if self.sql.set_gtid_position:
                run(Statement(self.sql.set_gtid_position, (position,)))
            for statement in MARK_SEED_FINISHED:
                run(statement)
        finally:
            for name in blocking:
                run(Statement("SET GLOBAL %s = ON" % name))

    def stream(self, dump: str, client: str) -> str:
        """Pipe the dump into the client through this process; return the dump's GTID position."""
        with tempfile.TemporaryDirectory(prefix="nospof-seed-") as private_dir:
            primary_options = os.path.join(private_dir, "primary.cnf")
            replica_options = os.path.join(private_dir, "replica.cnf")
            for path, password in ((primary_options, self.primary.password),
                                   (replica_options, self.replica.password)):
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "w") as option_file:
                    option_file.write(option_file_text(password))
            return self._pipe(self.dump_command(dump, primary_options),
                              self.client_command(client, replica_options))

    def _pipe(self, dump_command: List[str], client_command: List[str]) -> str:
        """Run both programs, copy dump output to client input, check both exits."""
        scanner = GtidPositionScanner(self.sql.dump_gtid_position_pattern)
        timed_out = threading.Event()
        with tempfile.TemporaryFile() as dump_errors, tempfile.TemporaryFile() as client_errors:
            dumper = subprocess.Popen(dump_command, stdout=subprocess.PIPE, stderr=dump_errors)
            loader = subprocess.Popen(client_command, stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL, stderr=client_errors)

            def stop_both() -> None:
                timed_out.set()
                dumper.kill()
                loader.kill()

            watchdog = threading.Timer(self.timeout, stop_both)
            watchdog.start()
            try:
                loader_died = self._copy(dumper, loader, scanner)
            finally:
                dumper.wait()
                loader.wait()
                watchdog.cancel()
            if timed_out.is_set():
                raise SeedError("Seeding did not finish within %ss (seed_timeout)" % self.timeout)
            steps = [("load", loader, client_errors)]
            if not loader_died:  # else the dump was killed by us and says nothing new
                steps.insert(0, ("dump", dumper, dump_errors))
            failures = ["the %s step failed (exit %s): %s"
                        % (name, process.returncode, self._error_tail(errors))
                        for name, process, errors in steps if process.returncode != 0]
            if failures:
                raise SeedError("Seeding failed: " + "; ".join(failures))
        if scanner.pattern is not None and scanner.position is None:
            raise SeedError("The dump states no GTID position; is the binary log on on the primary?")
        return scanner.position or ""

    @staticmethod
    def _error_tail(errors: IO[bytes]) -> str:
        """The end of a program's captured stderr."""
        size = errors.seek(0, os.SEEK_END)
        errors.seek(max(0, size - ERROR_TAIL_BYTES))
        return errors.read().decode(errors="replace").strip()

    @staticmethod
    def _copy(dumper: subprocess.Popen, loader: subprocess.Popen,
              scanner: GtidPositionScanner) -> bool:
        """Copy in chunks; a loader that died stops the dump too (returns True then)."""
        dump_output: IO[bytes] = dumper.stdout  # type: ignore[assignment]
        load_input: IO[bytes] = loader.stdin  # type: ignore[assignment]
        try:
            # keep the load out of the replica's binary log
            load_input.write(b"SET SESSION sql_log_bin = 0;\n")
            for chunk in iter(lambda: dump_output.read(CHUNK_BYTES), b""):
                scanner.feed(chunk)
                load_input.write(chunk)
            scanner.finish()
            load_input.close()
        except BrokenPipeError:
            dumper.kill()
            return True
        return False
