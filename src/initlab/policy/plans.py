"""A Plan: which scheme fills which parameter, with which parameters, and why. Data only.

A plan is built (``initlab.plan``) before anything writes weights, so it can be read, saved,
edited and applied later (``initlab.initialize(model, plan)``). It prints as a table and
round-trips through JSON: ``Plan.from_dict(json.loads(json.dumps(p.to_dict()))) == p``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from initlab.errors import UserError
from initlab.schemes import get_scheme

KEEP = "keep"  # not a scheme: the parameter keeps the values it has
PLAN_FORMAT = 1


def _validate_scheme(name: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if name == KEEP:
        if params:
            raise UserError(f"entry scheme 'keep' takes no parameters; got {params!r}")
        return KEEP, {}
    spec = get_scheme(name, **params)
    return spec.name, dict(spec.params)


@dataclass(frozen=True)
class RowBlock:
    """Rows ``start:stop`` (along dim 0) of a parameter filled by another scheme, after the main one.

    Used for an LSTM's forget-gate bias (rows H:2H = 1) and an embedding's padding row (zeros).
    """

    start: int
    stop: int
    scheme: str
    params: dict[str, Any] = field(default_factory=dict)
    why: str = ""

    def __post_init__(self) -> None:
        if not (0 <= self.start < self.stop):
            raise UserError(f"row block needs 0 <= start < stop; got {self.start}:{self.stop}")
        name, params = _validate_scheme(self.scheme, dict(self.params))
        object.__setattr__(self, "scheme", name)
        object.__setattr__(self, "params", params)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [self.start, self.stop], "scheme": self.scheme, "params": dict(self.params), "why": self.why}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RowBlock:
        rows = d.get("rows")
        if not (isinstance(rows, (list, tuple)) and len(rows) == 2):
            raise UserError(f"row block 'rows' must be [start, stop]; got {rows!r}")
        return cls(int(rows[0]), int(rows[1]), d["scheme"], dict(d.get("params") or {}), d.get("why", ""))


@dataclass(frozen=True)
class PlanEntry:
    """One parameter's initialization.

    ``scheme``/``params``: a registered scheme (validated) or ``"keep"``. ``chunks``: the tensor's
    rows form this many equal blocks (the gates of a recurrent layer, q/k/v of attention), each
    drawn as a separate matrix. ``blocks``: rows overwritten afterwards by another scheme.
    ``source``: ``auto`` (a rule), ``policy`` (a scheme-name policy), ``override`` (a user
    pattern) or ``lsuv`` (LSUV pre-init).
    """

    param: str
    scheme: str
    params: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    layer: str = ""
    kind: str = ""
    activation: str | None = None
    role: str = ""
    shape: tuple[int, ...] = ()
    chunks: int = 1
    blocks: tuple[RowBlock, ...] = ()
    source: str = "auto"
    mup: dict[str, Any] | None = None  # μP record (initlab.mup.table.MupRecord.to_dict); None outside μP

    def __post_init__(self) -> None:
        if not isinstance(self.param, str) or not self.param:
            raise UserError(f"plan entry 'param' must be a parameter name; got {self.param!r}")
        name, params = _validate_scheme(self.scheme, dict(self.params))
        object.__setattr__(self, "scheme", name)
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if isinstance(self.chunks, bool) or not isinstance(self.chunks, int) or self.chunks < 1:
            raise UserError(f"{self.param}: chunks must be an integer >= 1; got {self.chunks!r}")
        if self.shape and self.chunks > 1 and self.shape[0] % self.chunks:
            raise UserError(f"{self.param}: {self.shape[0]} rows do not split into {self.chunks} chunks")

    @property
    def keeps(self) -> bool:
        return self.scheme == KEEP

    def scheme_text(self) -> str:
        """``he_normal(nonlinearity=relu)``: the scheme with its non-default parameters."""
        if self.keeps:
            return KEEP
        text = _scheme_call(self.scheme, self.params)
        if self.chunks > 1:
            text += f" x{self.chunks} blocks"
        for b in self.blocks:
            text += f"; rows {b.start}:{b.stop} {_scheme_call(b.scheme, b.params)}"
        if self.mup is not None:
            text += (
                f" x{self.mup['init_std_mult']:.4g} [μP {self.mup['class']}, Adam lr x{self.mup['lr_mult_adam']:.4g}]"
            )
        return text

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "param": self.param,
            "scheme": self.scheme,
            "params": dict(self.params),
            "reason": self.reason,
            "layer": self.layer,
            "kind": self.kind,
            "activation": self.activation,
            "role": self.role,
            "shape": list(self.shape),
            "chunks": self.chunks,
            "blocks": [b.to_dict() for b in self.blocks],
            "source": self.source,
        }
        if self.mup is not None:
            d["mup"] = dict(self.mup)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlanEntry:
        if not isinstance(d, dict) or "param" not in d or "scheme" not in d:
            raise UserError(f"a plan entry is a dict with at least 'param' and 'scheme'; got {d!r}")
        known = {
            "param",
            "scheme",
            "params",
            "reason",
            "layer",
            "kind",
            "activation",
            "role",
            "shape",
            "chunks",
            "blocks",
            "source",
            "mup",
        }
        extra = sorted(set(d) - known)
        if extra:
            raise UserError(f"unexpected keys in plan entry {d['param']!r}: {extra}; allowed: {sorted(known)}")
        return cls(
            param=d["param"],
            scheme=d["scheme"],
            params=dict(d.get("params") or {}),
            reason=d.get("reason", ""),
            layer=d.get("layer", ""),
            kind=d.get("kind", ""),
            activation=d.get("activation"),
            role=d.get("role", ""),
            shape=tuple(d.get("shape") or ()),
            chunks=int(d.get("chunks", 1)),
            blocks=tuple(RowBlock.from_dict(b) for b in d.get("blocks") or ()),
            source=d.get("source", "auto"),
            mup=d.get("mup"),
        )


def _scheme_call(name: str, params: dict[str, Any]) -> str:
    defaults = {p.name: p.default for p in get_scheme(name).definition.params}
    shown = {k: v for k, v in params.items() if defaults.get(k, object()) != v}
    if not shown:
        return name
    return f"{name}(" + ", ".join(f"{k}={_fmt(v)}" for k, v in shown.items()) + ")"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@dataclass(frozen=True)
class LsuvRecord:
    """What LSUV did to one layer (Mishkin & Matas 2016, Alg. 1): the total factor applied to its
    weight, how many rescalings it took, and its output variance on the batch before and after."""

    layer: str
    scale: float
    iterations: int
    variance_before: float | None  # None: the layer was not measured (see note)
    variance_after: float | None
    converged: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "scale": self.scale,
            "iterations": self.iterations,
            "variance_before": self.variance_before,
            "variance_after": self.variance_after,
            "converged": self.converged,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LsuvRecord:
        return cls(
            layer=d["layer"],
            scale=float(d["scale"]),
            iterations=int(d["iterations"]),
            variance_before=_opt_float(d["variance_before"]),
            variance_after=_opt_float(d["variance_after"]),
            converged=bool(d["converged"]),
            note=d.get("note", ""),
        )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _fmt_var(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


REFINEMENTS = ("lsuv",)


@dataclass(frozen=True)
class Plan:
    """Per-parameter initialization, in the model's parameter order.

    ``policy``: what was asked (``"auto"``, a scheme name, ``"overrides"``, ``"lsuv"``, ...).
    ``method``: how the model was read (``fx``, ``hooks``, ``modules``; see
    ``initlab.policy.introspect``). ``refine``: ``"lsuv"`` when ``initialize`` rescales on data
    after applying the entries; ``lsuv`` then holds what it did. ``seed``: set by ``initialize``.
    """

    entries: tuple[PlanEntry, ...] = ()
    policy: str = "auto"
    method: str = ""
    notes: tuple[str, ...] = ()
    refine: str | None = None
    lsuv: tuple[LsuvRecord, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", tuple(self.entries))
        object.__setattr__(self, "notes", tuple(self.notes))
        object.__setattr__(self, "lsuv", tuple(self.lsuv))
        if self.refine is not None and self.refine not in REFINEMENTS:
            raise UserError(f"plan refine must be one of {', '.join(REFINEMENTS)} or None; got {self.refine!r}")
        index: dict[str, PlanEntry] = {}  # name lookups in O(1): a 10,000-layer plan is checked per entry
        for e in self.entries:
            if e.param in index:
                raise UserError(f"plan lists parameter {e.param!r} twice")
            index[e.param] = e
        object.__setattr__(self, "_index", index)

    # --- access ---------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[PlanEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, param: str) -> PlanEntry:
        return self._index[param]

    def __contains__(self, param: object) -> bool:
        return param in self._index

    @property
    def params(self) -> list[str]:
        return [e.param for e in self.entries]

    def with_(self, **changes: Any) -> Plan:
        return replace(self, **changes)

    # --- serialisation --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; ``Plan.from_dict`` inverts it."""
        return {
            "format": PLAN_FORMAT,
            "policy": self.policy,
            "method": self.method,
            "notes": list(self.notes),
            "refine": self.refine,
            "seed": self.seed,
            "entries": [e.to_dict() for e in self.entries],
            "lsuv": [r.to_dict() for r in self.lsuv],
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | str) -> Plan:
        """Inverse of ``to_dict`` (also accepts a JSON string); every scheme is re-validated."""
        if isinstance(d, str):
            d = json.loads(d)
        if not isinstance(d, dict) or "entries" not in d:
            raise UserError(f"a plan dict has an 'entries' list; got keys {sorted(d) if isinstance(d, dict) else d!r}")
        if d.get("format", PLAN_FORMAT) != PLAN_FORMAT:
            raise UserError(
                f"plan format {d.get('format')!r} is not supported; this initlab reads format {PLAN_FORMAT}"
            )
        return cls(
            entries=tuple(PlanEntry.from_dict(e) for e in d["entries"]),
            policy=d.get("policy", "auto"),
            method=d.get("method", ""),
            notes=tuple(d.get("notes") or ()),
            refine=d.get("refine"),
            lsuv=tuple(LsuvRecord.from_dict(r) for r in d.get("lsuv") or ()),
            seed=d.get("seed"),
        )

    # --- display --------------------------------------------------------------------------------

    def rows(self) -> list[tuple[str, str, str, str]]:
        return [(e.param, "x".join(str(s) for s in e.shape) or "-", e.scheme_text(), e.reason) for e in self.entries]

    def header(self) -> str:
        text = f"Plan: policy={self.policy}, introspection={self.method or '-'}, {len(self.entries)} parameters"
        if self.seed is not None:
            text += f", seed={self.seed}"
        if self.refine:
            text += f", refine={self.refine}"
        return text

    def __str__(self) -> str:
        lines = [self.header()]
        lines += [f"  note: {n}" for n in self.notes]
        lines.append(_text_table(("param", "shape", "scheme", "reason"), self.rows()))
        if self.lsuv:
            lines.append("LSUV (Mishkin & Matas 2016): output variance on the batch, per layer")
            lines.append(_text_table(("layer", "var before", "var after", "scale", "iters", "ok"), self.lsuv_rows()))
        return "\n".join(lines)

    def lsuv_rows(self) -> list[tuple[str, ...]]:
        return [
            (
                r.layer,
                _fmt_var(r.variance_before),
                _fmt_var(r.variance_after),
                f"{r.scale:.4g}",
                str(r.iterations),
                "yes" if r.converged else f"no{': ' + r.note if r.note else ''}",
            )
            for r in self.lsuv
        ]

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(title=self.header(), title_justify="left", show_lines=False)
        for col in ("param", "shape", "scheme", "reason"):
            table.add_column(col, overflow="fold")
        for row in self.rows():
            table.add_row(*row)
        parts: list[Any] = [Text(f"note: {n}", style="dim") for n in self.notes] + [table]
        if self.lsuv:
            lt = Table(title="LSUV (Mishkin & Matas 2016)", title_justify="left")
            for col in ("layer", "var before", "var after", "scale", "iters", "ok"):
                lt.add_column(col)
            for row in self.lsuv_rows():
                lt.add_row(*row)
            parts.append(lt)
        return Group(*parts)


def _text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        # The last column (the reason) is not padded: it may be long.
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        head = "  ".join(c.ljust(widths[i]) for i, c in enumerate(cells[:-1]))
        return f"  {head}  {cells[-1]}".rstrip()

    out = [line(headers), line(["-" * w for w in widths[:-1]] + ["-" * widths[-1]])]
    out += [line(r) for r in rows]
    return "\n".join(out)
