"""Residual branches in a ``torch.fx`` graph: which add is a skip connection, which weight layers
form its branch, and the norms at the branch's end and after the add."""

from __future__ import annotations

from torch import fx, nn

from initlab.policy.fxroles import classify_node, node_maps_zero_to_zero, tensor_operands
from initlab.policy.records import ResidualBranch


def _ancestor_masks(nodes: list[fx.Node]) -> tuple[dict[fx.Node, int], dict[fx.Node, int]]:
    index = {n: i for i, n in enumerate(nodes)}
    anc: dict[fx.Node, int] = {}
    for n in nodes:
        mask = 0
        for parent in n.all_input_nodes:
            mask |= anc[parent] | (1 << index[parent])
        anc[n] = mask
    return anc, index


def _branch_end(node: fx.Node, modules: dict[str, nn.Module]) -> tuple[str | None, str | None]:
    """Walk back from an add operand through norms, dropout, scaling and getitem to the layer that
    produced it. Returns (layer name or None, the norm nearest to the add or None)."""
    norm = None
    current: fx.Node | None = node
    for _ in range(64):
        if current is None:
            return None, None
        role = classify_node(current, modules)
        if role.tag == "layer":
            return role.name, norm
        if role.tag == "norm":
            norm = norm or role.name
        elif not (role.tag == "scale" or (role.tag == "transparent" and node_maps_zero_to_zero(current, modules))):
            return None, None
        inputs = tensor_operands(current)
        current = inputs[0] if inputs else None
    return None, None


def _split_add(
    u: fx.Node, v: fx.Node, anc: dict, index: dict, nodes: list, layer_mask: int
) -> tuple[fx.Node, int] | None:
    """(branch operand, mask of its own layer nodes) when ``u + v`` is residual, else None."""
    bu, bv = 1 << index[u], 1 << index[v]
    upto_u, upto_v = anc[u] | bu, anc[v] | bv
    if bu & anc[v]:
        return v, upto_v & ~upto_u & layer_mask
    if bv & anc[u]:
        return u, upto_u & ~upto_v & layer_mask
    common = anc[u] & anc[v]
    if not common:
        return None
    c = common.bit_length() - 1  # the latest common ancestor
    before = anc[nodes[c]] | (1 << c)
    own_u, own_v = upto_u & ~before & layer_mask, upto_v & ~before & layer_mask
    k_u, k_v = own_u.bit_count(), own_v.bit_count()
    if k_u > k_v and k_v <= 1:
        return u, own_u
    if k_v > k_u and k_u <= 1:
        return v, own_v
    return None


def residual_branches(graph: fx.Graph, modules: dict[str, nn.Module]) -> list[ResidualBranch]:
    """One ``ResidualBranch`` for each residual add.

    An add of u and v is residual when one operand is an ancestor of the other (identity skip:
    ``x + f(x)``), or when both descend from a common node and one path has at most one weight
    layer (projection shortcut) while the other has more (the branch).
    """
    nodes = list(graph.nodes)
    anc, index = _ancestor_masks(nodes)
    roles = {n: classify_node(n, modules) for n in nodes}
    layer_mask = 0
    for n in nodes:
        if roles[n].tag == "layer":
            layer_mask |= 1 << index[n]
    found: list[ResidualBranch] = []
    for n in nodes:
        operands = tensor_operands(n)
        if roles[n].tag != "add" or len(operands) != 2:
            continue
        split = _split_add(operands[0], operands[1], anc, index, nodes, layer_mask)
        if split is None or split[1] == 0:
            continue
        end, norm = _branch_end(split[0], modules)
        if end is None:
            continue
        members: list[str] = []
        for i, node in enumerate(nodes):
            if split[1] >> i & 1 and node.target not in members:
                members.append(node.target)
        post = next((roles[u].name for u in n.users if roles[u].tag == "norm"), None)
        found.append(ResidualBranch(end, tuple(members), norm, post))
    return found
