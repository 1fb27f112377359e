"""nft_sources: merged, split by family, host prefixes dropped, bad input named."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.nospof.webstack.plugins.filter.nft_sources import nft_sources


def test_hosts_keep_no_prefix_and_families_split():
    assert nft_sources(["10.0.0.2", "2001:db8::1", "10.0.0.1/32"]) == {
        "ipv4": ["10.0.0.1", "10.0.0.2"], "ipv6": ["2001:db8::1"]}


def test_adjacent_and_covered_sources_merge():
    assert nft_sources(["10.0.0.0/25", "10.0.0.128/25", "10.0.0.7", "192.0.2.0/24"]) == {
        "ipv4": ["10.0.0.0/24", "192.0.2.0/24"], "ipv6": []}


def test_empty_input_gives_empty_sets():
    assert nft_sources([]) == {"ipv4": [], "ipv6": []}


def test_a_name_is_refused_and_named():
    with pytest.raises(AnsibleFilterError, match="web1.example"):
        nft_sources(["web1.example"])
