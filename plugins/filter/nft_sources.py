# -*- coding: utf-8 -*-
# Copyright: nospof project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: nft_sources
short_description: Merge source addresses and networks into the IPv4 and IPv6 sets of an nftables rule
version_added: 0.3.0
description:
  - Takes addresses and networks, merges overlapping and adjacent ones, and splits them by family.
  - A single host is written without its prefix length (C(192.0.2.1), not C(192.0.2.1/32)), as nft prints it.
  - Works on plain Python values, which keeps the firewall template fast; the C(ansible.utils) network filters
    copy their whole lazily templated arguments on every call.
options:
  _input:
    description: Addresses and networks, for example C(192.0.2.1), C(198.51.100.0/24) or C(2001:db8::/64).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Show the sets a rule from the web nodes would use
  ansible.builtin.debug:
    msg: "{{ ['192.0.2.1', '192.0.2.0/24', '2001:db8::1'] | nospof.webstack.nft_sources }}"
  # {"ipv4": ["192.0.2.0/24"], "ipv6": ["2001:db8::1"]}
"""

RETURN = r"""
_value:
  description: Keys C(ipv4) and C(ipv6), each a sorted list of merged networks, single hosts without a prefix length.
  type: dict
"""

from ansible.errors import AnsibleFilterError

try:
    import netaddr
except ImportError:
    netaddr = None


def nft_sources(sources):
    """Filter entry point; see DOCUMENTATION."""
    if netaddr is None:
        raise AnsibleFilterError("nospof.webstack.nft_sources needs the netaddr Python library on the controller")
    networks = []
    for source in sources:
        try:
            networks.append(netaddr.IPNetwork(str(source)))
        except (netaddr.AddrFormatError, ValueError, TypeError) as error:
            raise AnsibleFilterError(f"nft_sources: {source!r} is not an IP address or network: {error}") from error
    merged = {"ipv4": [], "ipv6": []}
    for network in netaddr.cidr_merge(networks):
        family = "ipv4" if network.version == 4 else "ipv6"
        host_prefix = 32 if network.version == 4 else 128
        merged[family].append(str(network.ip) if network.prefixlen == host_prefix else str(network.cidr))
    return merged


class FilterModule:
    """nospof.webstack nftables filters."""

    def filters(self):
        return {"nft_sources": nft_sources}
