"""The scheme library: fans, gains, the variance-scaling core and every registered scheme.

Importing this package registers all schemes (core, elementwise, orthogonal, sparse, identity,
looks_linear).
"""

from initlab.schemes import core, elementwise, identity, looks_linear, orthogonal, sparse  # noqa: F401  (registration)
from initlab.schemes.fans import compute_fans, fan
from initlab.schemes.gains import gain, moment_gain
from initlab.schemes.registry import (
    Param,
    Scheme,
    SchemeDef,
    aliases,
    canonical_spec,
    definitions,
    format_spec,
    get_scheme,
    init_,
    list_schemes,
    parse_spec,
    parse_value,
    resolve,
    scheme_from_spec,
    split_specs,
)

# The article's ten schemes, in its order (the default set of `initlab compare`), each with the
# article's own name for it.
ARTICLE_NAMES = {
    "random_uniform": "random",
    "zeros": "zero",
    "random_normal": "Gaussian",
    "xavier_uniform": "Xavier",
    "he_normal": "He",
    "orthogonal": "orthogonal",
    "sparse": "sparse",
    "uniform_fan": "uniform",
    "constant": "constant",
    "positive": "positive",
}
ARTICLE_SCHEMES = tuple(ARTICLE_NAMES)

__all__ = [
    "ARTICLE_NAMES",
    "ARTICLE_SCHEMES",
    "Param",
    "Scheme",
    "SchemeDef",
    "aliases",
    "compute_fans",
    "canonical_spec",
    "definitions",
    "fan",
    "format_spec",
    "parse_spec",
    "parse_value",
    "scheme_from_spec",
    "split_specs",
    "gain",
    "get_scheme",
    "init_",
    "list_schemes",
    "moment_gain",
    "resolve",
]
