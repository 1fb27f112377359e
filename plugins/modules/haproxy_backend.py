#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, nospof project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: haproxy_backend
short_description: Read and change HAProxy backend servers through the Runtime API
version_added: 0.1.0
description:
  - Talks to HAProxy's Runtime API (the stats socket) on a load balancer.
  - Reports every backend and server, with operational and admin state, weight, sessions and the last health check.
  - Sets a server to C(ready), C(drain) or C(maint), sets its weight, and ends its sessions.
    Only the commands needed are sent, so a second run changes nothing.
  - Waits, always with a timeout, until a server is C(UP), C(DOWN), in C(DRAIN) or C(MAINT), or without sessions.
  - Fails when fewer than O(min_up) servers of a backend are C(UP), naming those that are not;
    refuses, sending nothing, a change that would leave fewer than O(min_up).
  - A server is C(UP) when its health is UP and its admin state is READY, so it takes new traffic.
    A server in DRAIN or MAINT is never C(UP); HAProxy reports a server in MAINT as DOWN.
  - C(changed) compares the server's admin state and weight before and after the run
    (and is also true when O(shutdown_sessions) ended existing sessions).
author:
  - nospof project (@nospof)
attributes:
  check_mode:
    support: full
    description:
      - Reads the current state and reports the commands that would be sent, the predicted RV(after), and C(changed), sending no command.
      - Waits are skipped. O(min_up) refuses a change that would take a server out of too small a backend.
  diff_mode:
    support: full
    description: Shows the server's admin state and weight before and after.
  idempotent:
    support: full
    description:
      - Commands are sent only when the server differs from the request.
      - O(shutdown_sessions) ends whatever sessions the server has at each run, and reports changed only when there were some.
options:
  socket:
    description:
      - The HAProxy stats socket, which must have C(level admin) to change servers.
      - A unix socket path, or C(host:port) for a TCP socket (keep those on loopback; the Runtime API has no authentication).
    type: str
    default: /run/haproxy/admin.sock
  socket_timeout:
    description: Seconds allowed for each exchange with the socket, from connect to the end of the reply.
    type: float
    default: 5
  backend:
    description:
      - The backend to act on. Without it, a read (no O(state)) reports every backend.
      - Required with O(server) and O(min_up).
    type: str
  server:
    description:
      - The server of O(backend) to act on.
      - Required with O(state=ready), O(state=drain), O(state=maint), O(weight), O(shutdown_sessions) and O(wait_for).
    type: str
  state:
    description:
      - Leave it out to only read (the info mode), which returns every backend and server and sends nothing.
      - V(ready) puts the server back into service, V(drain) lets it finish its sessions but sends it no new ones,
        V(maint) takes it out of service (its health checks stop).
    type: str
    choices: [ready, drain, maint]
  weight:
    description:
      - The server's weight, from 0 to 256, or a percentage of its configured weight such as V(50%).
      - HAProxy computes a percentage as configured weight * N / 100, capped at 256.
      - Backends with a static balance algorithm (such as C(source) without consistent hashing) accept only V(0%) and V(100%).
    type: str
  shutdown_sessions:
    description: End every session of the server, after any state change.
    type: bool
    default: false
  wait_for:
    description:
      - After any change, wait until the server is V(UP) (health UP and admin READY), V(DOWN) (as HAProxy's health checks or MAINT say),
        in admin state V(DRAIN) or V(MAINT), or has V(no_sessions).
      - A wait that cannot succeed after the requested O(state), such as V(UP) after V(drain), fails before anything is sent.
      - A wait that times out fails with the last state seen. Skipped in check mode.
    type: str
    choices: [UP, DOWN, DRAIN, MAINT, no_sessions]
  wait_timeout:
    description: Seconds to wait for O(wait_for) before failing.
    type: float
    default: 30
  wait_interval:
    description: Seconds between two reads while waiting.
    type: float
    default: 0.5
  min_up:
    description:
      - Fail when fewer than this many servers of O(backend) are C(UP), listing which ones are not and their state.
      - With a change to O(server), refuse, sending nothing, when the change would leave fewer than this many C(UP).
        A change that takes no server out (such as V(ready)) runs, and the count is checked after it and any wait.
    type: int
notes:
  - Run on the load balancer itself, usually with C(become), as the stats socket is a local file.
  - Changes made through the Runtime API last until HAProxy restarts or reloads without a server state file.
seealso:
  - name: HAProxy management guide, Runtime API
    description: The commands this module sends.
    link: https://docs.haproxy.org/2.6/management.html#9.3
  - module: community.general.haproxy
"""

EXAMPLES = r"""
- name: Report every backend and server (no state, so it only reads)
  nospof.webstack.haproxy_backend:
  become: true
  register: haproxy_backend_info

- name: Take web1 out of rotation, but only while another web server stays UP
  nospof.webstack.haproxy_backend:
    backend: web
    server: web1
    state: drain
    min_up: 1
    wait_for: no_sessions
    wait_timeout: 60
  become: true

- name: Put web1 in maintenance and end what is left of its sessions
  nospof.webstack.haproxy_backend:
    backend: web
    server: web1
    state: maint
    shutdown_sessions: true
  become: true

- name: Bring web1 back and wait until its health checks pass
  nospof.webstack.haproxy_backend:
    backend: web
    server: web1
    state: ready
    wait_for: UP
    wait_timeout: 30
  become: true

- name: Send web2 half of its configured share
  nospof.webstack.haproxy_backend:
    backend: web
    server: web2
    weight: "50%"
  become: true

- name: Fail unless both web servers are UP
  nospof.webstack.haproxy_backend:
    backend: web
    min_up: 2
  become: true

- name: Talk to a TCP stats socket on loopback
  nospof.webstack.haproxy_backend:
    socket: 127.0.0.1:9999
    backend: web
    server: web1
    weight: 10
"""

RETURN = r"""
commands:
  description: The Runtime API commands sent, in order; in check mode, the commands that would be sent.
  returned: always
  type: list
  elements: str
  sample: ["set server web/web1 state drain"]
before:
  description: The server's admin state and weight before the run; null without O(server).
  returned: always
  type: dict
  sample: {"admin_state": "READY", "weight": 100}
after:
  description: The server's admin state and weight after the run (predicted in check mode); null without O(server).
  returned: always
  type: dict
  sample: {"admin_state": "DRAIN", "weight": 100}
waited:
  description: The wait that succeeded; null without O(wait_for) and in check mode.
  returned: always
  type: dict
  contains:
    for:
      description: The awaited state, as in O(wait_for).
      type: str
      sample: no_sessions
    elapsed_s:
      description: Seconds the wait took.
      type: float
      sample: 0.42
    server:
      description: The server when the wait ended, with the fields of RV(servers).
      type: dict
  sample: {"for": "DRAIN", "elapsed_s": 0.003, "server": {"server": "web1", "admin_state": "DRAIN"}}
backends:
  description: Each backend read (all, or O(backend)), keyed by name, as HAProxy reports it at the end of the run.
  returned: always
  type: dict
  sample:
    web:
      status: UP
      algorithm: roundrobin
      servers_total: 2
      servers_up: 1
      servers_not_up: ["web1"]
  contains:
    status:
      description: The backend's status, V(UP) while any server can take traffic, else V(DOWN).
      type: str
    algorithm:
      description: The balance algorithm, or null when the socket level hides it.
      type: str
    servers_total:
      description: Number of servers.
      type: int
    servers_up:
      description: Number of servers that are UP (health UP and admin READY).
      type: int
    servers_not_up:
      description: Names of the servers that are not UP.
      type: list
      elements: str
servers:
  description: Every server read (of all backends, of O(backend), or only O(server)), as HAProxy reports it at the end of the run.
  returned: always
  type: list
  elements: dict
  contains:
    backend:
      description: The backend name.
      type: str
    server:
      description: The server name.
      type: str
    address:
      description: The server's address and port.
      type: str
      sample: "10.0.1.21:8080"
    status:
      description: HAProxy's one-word summary from C(show stat), such as V(UP), V(DOWN), V(DRAIN), V(MAINT), V(UP 1/2) or V(no check).
      type: str
    op_state:
      description: The operational state from health checks, V(UP), V(DOWN) or V(NOLB) (soft-stopping).
      type: str
    admin_state:
      description: The admin state set by operators, V(READY), V(DRAIN) or V(MAINT).
      type: str
    weight:
      description: The current user weight, which O(weight) sets.
      type: int
    initial_weight:
      description: The weight from the configuration, the base of percentage weights.
      type: int
    effective_weight:
      description: The weight HAProxy balances with now.
      type: int
    sessions:
      description: Current sessions.
      type: int
    backup:
      description: Whether this is a backup server.
      type: bool
    check_status:
      description: The last health check result, such as V(L7OK) or V(L4CON); null without checks.
      type: str
    check_duration_ms:
      description: How long the last health check took, in milliseconds; null without checks.
      type: int
    check_description:
      description: The last health check result in words.
      type: str
    last_change_s:
      description: Seconds since the server last changed state.
      type: int
  sample:
    - backend: web
      server: web1
      address: "10.0.1.21:8080"
      status: DRAIN
      op_state: UP
      admin_state: DRAIN
      weight: 100
      initial_weight: 100
      effective_weight: 100
      sessions: 3
      backup: false
      check_status: L7OK
      check_duration_ms: 1
      check_description: Layer7 check passed
      last_change_s: 5321
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nospof.webstack.plugins.module_utils.haproxy_runtime import (
    STATE_REQUESTS,
    WAIT_TARGETS,
    BackendOperator,
    OperationFailed,
    RuntimeApiError,
    RuntimeClient,
    ServerRequest,
    Weight,
)

ARGUMENT_SPEC = {
    "socket": {"type": "str", "default": "/run/haproxy/admin.sock"},
    "socket_timeout": {"type": "float", "default": 5},
    "backend": {"type": "str"},
    "server": {"type": "str"},
    # Without a state the module only reads ("info" inside module_utils).
    "state": {"type": "str", "choices": [state for state in STATE_REQUESTS if state != "info"]},
    "weight": {"type": "str"},
    "shutdown_sessions": {"type": "bool", "default": False},
    "wait_for": {"type": "str", "choices": list(WAIT_TARGETS)},
    "wait_timeout": {"type": "float", "default": 30},
    "wait_interval": {"type": "float", "default": 0.5},
    "min_up": {"type": "int"},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    try:
        request = ServerRequest(
            backend=params["backend"],
            server=params["server"],
            state=params["state"],
            weight=None if params["weight"] is None else Weight.parse(params["weight"]),
            shutdown_sessions=params["shutdown_sessions"],
            wait_for=params["wait_for"],
            wait_timeout=params["wait_timeout"],
            wait_interval=params["wait_interval"],
            min_up=params["min_up"],
        )
        client = RuntimeClient(params["socket"], params["socket_timeout"])
    except RuntimeApiError as err:
        module.fail_json(msg=str(err), changed=False, commands=[])
    try:
        outcome = BackendOperator(client).run(request, check_mode=module.check_mode)
    except OperationFailed as err:
        module.fail_json(msg=str(err), **err.outcome.to_result())
    result = outcome.to_result()
    if module._diff and outcome.before is not None:
        result["diff"] = {"before": outcome.before, "after": outcome.after}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
