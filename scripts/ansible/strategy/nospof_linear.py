# -*- coding: utf-8 -*-
# Copyright: nospof project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible's linear strategy, run over Mitogen when it is installed.

Mitogen keeps one Python interpreter per host for the whole run instead of
starting one per task, which halves a converge of the lab. ansible.cfg in a
checkout selects this strategy; without Mitogen it is the stock linear one.
Opt out with ANSIBLE_STRATEGY=linear.
"""

from __future__ import annotations

try:
    import ansible_mitogen.loaders
    import ansible_mitogen.strategy
except ImportError:
    from ansible.plugins.strategy.linear import StrategyModule  # noqa: F401  pylint: disable=unused-import
else:
    class StrategyModule(ansible_mitogen.strategy.StrategyMixin,
                         ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)):
        """The linear strategy over Mitogen's persistent interpreters."""
