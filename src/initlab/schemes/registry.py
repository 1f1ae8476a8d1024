"""The scheme registry: names, explicit aliases, validated specs and config round-trips.

A *scheme* is a pure function ``sample(shape, generator, dtype, **params) -> Tensor`` (as in
``jax.nn.initializers``) registered with its parameters, formula and source. ``Scheme`` is a
validated, immutable spec of one registered scheme with concrete parameters: built once (bad
values fail there, naming the parameter), then used to sample or to fill tensors in place.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from initlab.errors import UserError, closest, lookup

Sampler = Callable[..., torch.Tensor]
Shape = tuple[int, ...]  # a weight's shape in torch's layout (out, in, *kernel)


@dataclass(frozen=True)
class Param:
    """One parameter of a scheme: its default, a check, and the allowed values in words."""

    name: str
    default: Any
    check: Callable[[Any], bool]
    allowed: str
    kind: type = float  # values are coerced to this type (float params accept ints)
    optional: bool = False  # None allowed

    def validate(self, scheme: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        try:
            if self.kind is float:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise TypeError
                value = float(value)
                ok = math.isfinite(value) and self.check(value)
            elif self.kind is int:
                if isinstance(value, bool) or not isinstance(value, int):
                    if isinstance(value, float) and value.is_integer():
                        value = int(value)
                    else:
                        raise TypeError
                ok = self.check(value)
            else:
                ok = isinstance(value, self.kind) and self.check(value)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise UserError(f"{scheme}: parameter {self.name}={value!r} is invalid; allowed: {self.allowed}")
        return value


@dataclass(frozen=True)
class SchemeDef:
    """A registered scheme: the sampler and what a user needs to know about it."""

    name: str
    sample: Sampler
    params: tuple[Param, ...]
    formula: str
    reference: str
    min_dim: int = 2
    max_dim: int | None = None
    aliases: tuple[str, ...] = ()
    summary: str = ""
    torch_equivalent: str | None = None
    constraint: Callable[[dict[str, Any]], str | None] | None = None  # cross-parameter check
    shape_constraint: Callable[[tuple[int, ...], dict[str, Any]], str | None] | None = None

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def dims_text(self) -> str:
        if self.max_dim is None:
            return f">= {self.min_dim}-D" if self.min_dim > 1 else "any shape"
        if self.min_dim == self.max_dim:
            return f"{self.min_dim}-D"
        return f"{self.min_dim}-D to {self.max_dim}-D"


_REGISTRY: dict[str, SchemeDef] = {}
_ALIASES: dict[str, str] = {}


def register(
    name: str,
    *,
    params: Sequence[Param] = (),
    formula: str,
    reference: str,
    min_dim: int = 2,
    max_dim: int | None = None,
    aliases: Sequence[str] = (),
    torch_equivalent: str | None = None,
    constraint: Callable[[dict[str, Any]], str | None] | None = None,
    shape_constraint: Callable[[tuple[int, ...], dict[str, Any]], str | None] | None = None,
) -> Callable[[Sampler], Sampler]:
    """Decorator: register a sampler under ``name`` with its explicit ``aliases``."""

    def deco(fn: Sampler) -> Sampler:
        if name in _REGISTRY or name in _ALIASES:
            raise RuntimeError(f"scheme name {name!r} registered twice")
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        _REGISTRY[name] = SchemeDef(
            name=name,
            sample=fn,
            params=tuple(params),
            formula=formula,
            reference=reference,
            min_dim=min_dim,
            max_dim=max_dim,
            aliases=tuple(aliases),
            summary=summary,
            torch_equivalent=torch_equivalent,
            constraint=constraint,
            shape_constraint=shape_constraint,
        )
        for alias in aliases:
            if alias in _REGISTRY or alias in _ALIASES:
                raise RuntimeError(f"alias {alias!r} registered twice")
            _ALIASES[alias] = name
        return fn

    return deco


def list_schemes(*, aliases: bool = False) -> list[str]:
    """Names of all registered schemes (sorted); with ``aliases=True`` the aliases too."""
    names = sorted(_REGISTRY)
    return sorted(names + list(_ALIASES)) if aliases else names


def aliases() -> dict[str, str]:
    """Alias -> scheme name, as registered."""
    return dict(sorted(_ALIASES.items()))


def resolve(name: str) -> SchemeDef:
    """The definition for a scheme name or alias; unknown names suggest the nearest ones."""
    exact = _REGISTRY.get(name) if isinstance(name, str) else None
    if exact is not None:  # the common case, without normalising every registered name (plans of 10k layers)
        return exact
    return _REGISTRY[lookup("scheme", name, _REGISTRY, _ALIASES)]


def definitions() -> list[SchemeDef]:
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


@dataclass(frozen=True, eq=True)
class Scheme:
    """A validated scheme with concrete parameters (immutable, hashable, JSON-serialisable).

    >>> s = Scheme("he_normal", mode="fan_out")
    >>> Scheme.from_config(s.to_config()) == s
    True
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)

    def __init__(self, name: str, **params: Any) -> None:
        definition = resolve(name)
        extra = sorted(set(params) - set(definition.param_names))
        if extra:
            allowed = ", ".join(definition.param_names) or "none"
            hint = closest(extra[0], definition.param_names)
            near = f" Did you mean {hint[0]!r}?" if hint else ""
            raise UserError(f"{definition.name}: unknown parameter {extra[0]!r}.{near} Allowed parameters: {allowed}.")
        resolved = {p.name: p.validate(definition.name, params.get(p.name, p.default)) for p in definition.params}
        problem = definition.constraint(resolved) if definition.constraint else None
        if problem:
            raise UserError(f"{definition.name}: {problem}")
        object.__setattr__(self, "name", definition.name)
        object.__setattr__(self, "params", resolved)

    def __hash__(self) -> int:
        return hash((self.name, json.dumps(self.params, sort_keys=True)))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"Scheme({self.name!r}{', ' if args else ''}{args})"

    @property
    def definition(self) -> SchemeDef:
        return _REGISTRY[self.name]

    def check_shape(self, shape: Sequence[int]) -> None:
        """Raise ``ValueError`` when this scheme cannot fill a tensor of ``shape``."""
        d = self.definition
        ndim = len(shape)
        if ndim < d.min_dim or (d.max_dim is not None and ndim > d.max_dim):
            what = "a bias or other 1-D tensor" if ndim == 1 else f"a {ndim}-D tensor"
            raise UserError(
                f"scheme {self.name!r} cannot fill {what} of shape {tuple(shape)}; "
                f"it needs a {d.dims_text()} tensor" + (" (out, in, *kernel)" if d.min_dim >= 2 else "")
            )
        problem = d.shape_constraint(tuple(shape), self.params) if d.shape_constraint else None
        if problem:
            raise UserError(f"scheme {self.name!r} cannot fill a tensor of shape {tuple(shape)}: {problem}")

    def fits(self, shape: Sequence[int]) -> bool:
        try:
            self.check_shape(shape)
        except ValueError:
            return False
        return True

    def sample(
        self,
        shape: Sequence[int],
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """A new tensor of ``shape`` drawn from this scheme (on the generator's device).

        Every dtype is drawn in float32 and cast, so a model gets the same weights (to the
        precision of its dtype) in fp16, bf16, fp32 or fp64 from the same generator state.
        """
        shape = tuple(int(s) for s in shape)
        self.check_shape(shape)
        if not dtype.is_floating_point:
            raise UserError(f"scheme {self.name!r} fills floating tensors; got dtype {dtype}")
        if generator is None:
            generator = torch.Generator()  # fixed default seed; never the global RNG
        elif not isinstance(generator, torch.Generator):
            raise UserError(f"generator must be a torch.Generator; got {type(generator).__name__}")
        if math.prod(shape) == 0:
            return torch.empty(shape, dtype=dtype, device=generator.device)
        out = self.definition.sample(shape, generator, torch.float32, **self.params)
        out = out.to(dtype)
        self._check_range(out, dtype)
        return out

    def _check_range(self, values: torch.Tensor, dtype: torch.dtype) -> None:
        """Refuse values that are non-finite in ``dtype`` or whose square overflows it.

        With ``|w| > sqrt(finfo(dtype).max)`` (1.8e19 in fp32 and bf16, 256 in fp16) a product
        of two such weights is not representable, so any network of two layers or more turns
        inf/NaN on unit-scale inputs: such a draw is a mistake, not an experiment.
        """
        largest = float(values.abs().max()) if values.numel() else 0.0
        limit = math.sqrt(torch.finfo(dtype).max)
        if math.isfinite(largest) and largest <= limit:
            return
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        shown = f"{largest:.3g}" if math.isfinite(largest) else "non-finite values"
        raise UserError(
            f"scheme {self.name}({params}) draws |w| up to {shown} for shape {tuple(values.shape)} in {dtype}; "
            f"allowed: |w| <= {limit:.3g} (the square root of the dtype's largest value, beyond which "
            f"two layers overflow). Lower the scale parameter"
        )

    def init_(self, tensor: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Fill ``tensor`` in place (no autograd) and return it."""
        if not isinstance(tensor, torch.Tensor):
            raise UserError(f"init_ needs a torch.Tensor; got {type(tensor).__name__}")
        values = self.sample(tensor.shape, generator=generator, dtype=tensor.dtype)
        with torch.no_grad():
            tensor.copy_(values)
        return tensor

    __call__ = init_

    def to_config(self) -> dict[str, Any]:
        """``{"name": ..., "params": {...}}`` with every parameter, JSON-serialisable."""
        return {"name": self.name, "params": dict(self.params)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Scheme:
        """Inverse of ``to_config`` (also accepts a JSON string)."""
        if isinstance(config, str):
            config = json.loads(config)
        if not isinstance(config, dict) or "name" not in config:
            raise UserError(f"a scheme config is a dict with 'name' and 'params'; got {config!r}")
        extra = set(config) - {"name", "params"}
        if extra:
            raise UserError(f"unexpected keys in scheme config: {sorted(extra)}; allowed: name, params")
        return cls(config["name"], **dict(config.get("params") or {}))

    @property
    def formula(self) -> str:
        return self.definition.formula

    @property
    def reference(self) -> str:
        return self.definition.reference


def get_scheme(name: str | Scheme | dict[str, Any], **params: Any) -> Scheme:
    """A validated ``Scheme`` from a name or alias (or a spec, or a config dict) and parameters."""
    if isinstance(name, Scheme):
        return Scheme(name.name, **{**name.params, **params}) if params else name
    if isinstance(name, dict):
        spec = Scheme.from_config(name)
        return get_scheme(spec, **params)
    return Scheme(name, **params)


def init_(
    tensor: torch.Tensor,
    scheme: str | Scheme | dict[str, Any],
    *,
    generator: torch.Generator | None = None,
    **params: Any,
) -> torch.Tensor:
    """Fill ``tensor`` in place from ``scheme`` (a name, alias, spec or config) and return it.

    Every random draw uses ``generator`` (a fresh ``torch.Generator()`` with its fixed default
    seed when omitted); the global RNG is neither read nor changed.

    >>> import torch, initlab
    >>> w = torch.empty(256, 128)
    >>> _ = initlab.init_(w, "he_normal", generator=torch.Generator().manual_seed(0))
    """
    return get_scheme(scheme, **params).init_(tensor, generator=generator)


def parse_value(text: str) -> Any:
    """A parameter value from command-line text: None, an int, a float, else the unquoted string."""
    text = text.strip()
    if text in ("None", "none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip("'\"")


def parse_spec(text: str) -> tuple[str, dict[str, Any]]:
    """``"he_normal(mode=fan_out, a=0.1)"`` -> ``("he_normal", {"mode": "fan_out", "a": 0.1})``.

    The command-line form of a scheme with parameters, the one parser of it (``compare
    --schemes``, ``--bias-init``, ``diagnose --scheme``, study settings). A bare name has no
    parameters; ``NAME()`` neither. Refused: an empty name, unbalanced parentheses, an item
    that is not ``key=value``, an empty item (``a=1,,b=2``, a trailing comma) and a key given
    twice.
    """
    if not isinstance(text, str):
        raise UserError(f"scheme spec: got {text!r}; expected NAME or NAME(key=value, ...)")
    text = text.strip()
    expected = "expected NAME or NAME(key=value, ...)"
    if "(" not in text and ")" not in text:
        if not text:
            raise UserError(f"scheme spec: got {text!r}; {expected}")
        return text, {}
    name, _, inner = text.partition("(")
    if not name.strip() or not inner.endswith(")") or "(" in inner or ")" in inner[:-1]:
        raise UserError(f"scheme spec: got {text!r}; {expected}")
    inner = inner[:-1]
    params: dict[str, Any] = {}
    if inner.strip():
        for part in (p.strip() for p in inner.split(",")):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not part:
                raise UserError(f"scheme spec {text!r}: empty parameter (a stray comma); {expected}")
            if not sep or not key or not value.strip():
                raise UserError(f"scheme spec {text!r}: parameter {part!r} is not key=value")
            if key in params:
                raise UserError(f"scheme spec {text!r}: parameter {key!r} given twice")
            params[key] = parse_value(value)
    return name.strip(), params


def format_spec(name: str, params: dict[str, Any]) -> str:
    """Inverse of ``parse_spec`` (parameters sorted; a bare name when there are none)."""
    if not params:
        return name
    return f"{name}({', '.join(f'{k}={v}' for k, v in sorted(params.items()))})"


def split_specs(text: str) -> list[str]:
    """Split a comma list of scheme specs, keeping commas inside parentheses.

    Empty items (``"he_normal,,zeros"``, a trailing comma) and unbalanced parentheses are errors.
    """
    out: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "," and depth == 0:
            out.append("".join(current).strip())
            current = []
            continue
        depth += (ch == "(") - (ch == ")")
        if depth < 0:
            break
        current.append(ch)
    out.append("".join(current).strip())
    if depth != 0:
        raise UserError(f"scheme list {text!r}: unbalanced parentheses; expected NAME or NAME(key=value, ...) items")
    if not any(out):
        raise UserError(f"scheme list: got {text!r}; expected one or more schemes separated by commas")
    if not all(out):
        raise UserError(f"scheme list {text!r}: an empty item (a stray or trailing comma)")
    return out


def scheme_from_spec(text: str) -> Scheme:
    """A validated ``Scheme`` from its command-line form."""
    name, params = parse_spec(text)
    return Scheme(name, **params)


def canonical_spec(text: str) -> str:
    """The canonical command-line form: registered name, given parameters validated and sorted."""
    name, params = parse_spec(text)
    spec = Scheme(name, **params)
    return format_spec(spec.name, {k: spec.params[k] for k in params})
