"""Text for next-token prediction (``--task lm``): a corpus cut into windows of ``context`` tokens.

Tokens are bytes (``level="byte"``, vocabulary 256) or characters (``level="char"``, the
default: the file is decoded as UTF-8 and the vocabulary is the sorted set of characters in the
whole file, recorded in ``meta["vocabulary"]``). The first ``1 - TEST_FRACTION`` of the tokens
train, the last ``TEST_FRACTION`` test: a contiguous split, so no test text leaks into training
windows. Each split is cut into consecutive windows, input ``t[i : i+context]`` and target
``t[i+1 : i+context+1]`` for ``i = 0, context, 2·context, ...``: every token is predicted once.

The loss is the mean cross-entropy over every predicted token in nats; bits per character (or
byte) are that divided by ln 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from initlab.errors import UserError

LEVELS = ("char", "byte")
TEST_FRACTION = 0.1


def _windows(tokens: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
    n = (len(tokens) - 1) // context
    x = tokens[: n * context].reshape(n, context)
    y = tokens[1 : n * context + 1].reshape(n, context)
    return x, y


def read_text(path: Path, context: int | None, level: str) -> tuple[dict[str, np.ndarray], dict[str, Any], int]:
    """Windows ``x_train, y_train, x_test, y_test`` (token ids), meta and the vocabulary size."""
    if level not in LEVELS:
        raise UserError(f"text level={level!r} is not allowed; allowed: {', '.join(LEVELS)}")
    if isinstance(context, bool) or not isinstance(context, int) or context < 1:
        raise UserError(f"context: {context!r} is invalid; allowed: an integer >= 1 (tokens per window)")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    if level == "byte":
        tokens, vocab_size, vocabulary = np.frombuffer(raw, dtype=np.uint8).astype(np.int64), 256, None
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(
                f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); pass level='byte' "
                f"(--text-level byte) for byte tokens"
            ) from None
        vocabulary = "".join(sorted(set(text)))
        index = {c: i for i, c in enumerate(vocabulary)}
        tokens = np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))
        vocab_size = len(vocabulary)
    n_test = int(len(tokens) * TEST_FRACTION)
    train, test = tokens[: len(tokens) - n_test], tokens[len(tokens) - n_test :]
    need = int(np.ceil((context + 1) / TEST_FRACTION))
    if len(test) < context + 1 or len(train) < context + 1:
        unit = "bytes" if level == "byte" else "characters"
        raise UserError(
            f"{path} is too short for --context {context}: {len(tokens)} {unit}; need at least "
            f"{need} so the last {100 * TEST_FRACTION:.0f}% (the test split) holds one window of "
            f"{context + 1}"
        )
    x_train, y_train = _windows(train, context)
    x_test, y_test = _windows(test, context)
    meta = {
        "level": level,
        "tokens": len(tokens),
        "vocabulary_size": vocab_size,
        "context": context,
        "split": f"contiguous: first {len(train)} tokens train, last {len(test)} test",
    }
    if vocabulary is not None:
        meta["vocabulary"] = vocabulary
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return arrays, meta, vocab_size
