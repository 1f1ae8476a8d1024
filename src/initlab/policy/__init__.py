"""Per-layer initialization policies: introspect -> rules -> Plan -> apply (-> LSUV).

``plan(model, policy)`` returns data (a ``Plan``) before anything writes weights;
``initialize(model, policy, seed=0, data=None)`` applies it and returns it.
"""

from __future__ import annotations

from initlab.policy.apply import apply_plan, initialize
from initlab.policy.introspect import introspect
from initlab.policy.plans import KEEP, LsuvRecord, Plan, PlanEntry, RowBlock
from initlab.policy.policies import POLICY_NAMES, plan
from initlab.policy.records import LayerInfo, ModelGraph
from initlab.policy.rules import depth_critical_gain

__all__ = [
    "KEEP",
    "POLICY_NAMES",
    "LayerInfo",
    "LsuvRecord",
    "ModelGraph",
    "Plan",
    "PlanEntry",
    "RowBlock",
    "apply_plan",
    "depth_critical_gain",
    "initialize",
    "introspect",
    "plan",
]
