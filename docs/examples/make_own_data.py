"""Write the three example problems of docs/your-own-problem.md into DIR (default: own-data/).

- breast_cancer.csv: scikit-learn's bundled Wisconsin breast-cancer set (569 rows, 30 numeric
  features, column ``target``: 0 malignant, 1 benign);
- diabetes.csv: scikit-learn's bundled diabetes set (442 rows, 10 features, column ``target``:
  disease progression one year after baseline, 25..346);
- stdlib.txt: the source code of a fixed list of Python standard-library modules, concatenated
  (the exact bytes depend on the Python version; the fingerprint in the config records them).

No download: both tables ship inside scikit-learn, the text inside Python.
"""

from __future__ import annotations

import csv
import inspect
import sys
from pathlib import Path

STDLIB_MODULES = ("textwrap", "string", "shlex", "fnmatch", "glob", "bisect", "heapq", "calendar",
                  "difflib", "argparse", "json.decoder", "json.encoder")


def write_table(path: Path, bunch) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([str(n).replace(" ", "_") for n in bunch.feature_names] + ["target"])
        for row, target in zip(bunch.data, bunch.target):
            writer.writerow([repr(float(v)) for v in row] + [target.item()])


def main(out: str = "own-data") -> None:
    import importlib

    from sklearn.datasets import load_breast_cancer, load_diabetes

    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    write_table(root / "breast_cancer.csv", load_breast_cancer())
    write_table(root / "diabetes.csv", load_diabetes(scaled=False))
    text = "".join(inspect.getsource(importlib.import_module(m)) for m in STDLIB_MODULES)
    (root / "stdlib.txt").write_text(text, encoding="utf-8")
    for f in sorted(root.iterdir()):
        print(f"{f}: {f.stat().st_size} bytes")


if __name__ == "__main__":
    main(*sys.argv[1:])
