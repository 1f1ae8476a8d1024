"""The scheme library: fans, gains, the variance-scaling core and every registered scheme.

Importing this package registers all schemes (core, orthogonal, sparse, identity, looks_linear).
"""

from initlab.schemes import core, identity, looks_linear, orthogonal, sparse  # noqa: F401  (registration)
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

# The article's ten schemes, in its order: the default set of `initlab compare`.
ARTICLE_SCHEMES = (
    "random_uniform",
    "zeros",
    "random_normal",
    "xavier_uniform",
    "he_normal",
    "orthogonal",
    "sparse",
    "uniform_fan",
    "constant",
    "positive",
)
# The article's name for each.
ARTICLE_NAMES = dict(
    zip(
        ARTICLE_SCHEMES,
        (
            "random",
            "zero",
            "Gaussian",
            "Xavier",
            "He",
            "orthogonal",
            "sparse",
            "uniform",
            "constant",
            "positive",
        ),
    )
)

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
