"""CelebA's 40 binary attributes: reading ``list_attr_celeba.txt`` and naming attributes.

The file's first line is the image count, the second the 40 names, then one row per image
(``000001.jpg -1 1 ...``). Labels here are 0/1 (``1`` = the attribute is present). A request
such as ``[Male, Young, ~Eyeglasses]`` is a list of names, each optionally negated with ``~`` or
``-`` (Hydra's override grammar takes ``-Eyeglasses`` unquoted; ``~`` needs quotes on the command
line: ``"attributes=[Male,'~Eyeglasses']"``); an unknown name is one line that lists the valid
ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stylegan.errors import ConfigError, UserError

ATTRIBUTE_FILE = "list_attr_celeba.txt"
NEGATIONS = ("~", "-")  # "~Eyeglasses" or "-Eyeglasses": without


def read_attribute_table(root: str | Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """``(names, {file name: uint8 [40] labels in 0/1})`` from ``root/list_attr_celeba.txt``."""
    path = Path(root).expanduser() / ATTRIBUTE_FILE
    if not path.is_file():
        raise UserError(
            f"attribute labels not found: {path} (CelebA's {ATTRIBUTE_FILE}; set data.root=PATH)"
        )
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if len(lines) < 3:
        raise UserError(f"{path} has no attribute rows")
    names = lines[1]
    labels = {}
    for row in lines[2:]:
        if len(row) != len(names) + 1:
            raise UserError(f"{path}: row {row[0]!r} has {len(row) - 1} values, not {len(names)}")
        labels[row[0]] = (np.asarray(row[1:], dtype=np.int8) > 0).astype(np.uint8)
    return names, labels


def labels_for(files: Sequence[str], table: dict[str, np.ndarray], source: str) -> np.ndarray:
    """uint8 [N, 40] labels of ``files`` (in order); a file without a row is one line."""
    missing = [f for f in files if f not in table]
    if missing:
        raise UserError(
            f"{len(missing)} image(s) have no row in {source}, e.g. {missing[0]}; "
            "use CelebA's own list_attr_celeba.txt"
        )
    return np.stack([table[f] for f in files])


def check_attribute(name: object, known: Sequence[str], what: str = "attribute") -> str:
    """``name`` if it is one of ``known``, else a one-line ConfigError listing them."""
    if not isinstance(name, str) or name not in known:
        raise ConfigError(f"unknown {what} {name!r}; valid: {', '.join(known)}")
    return name


def parse_request(specs: Sequence[str], known: Sequence[str], what: str = "attributes") -> list:
    """``[Male, ~Eyeglasses]`` -> ``[("Male", True), ("Eyeglasses", False)]``, names checked;
    an attribute asked for twice (or both ways) is one line."""
    out: list[tuple[str, bool]] = []
    for spec in specs:
        text = str(spec).strip()
        wanted = not text.startswith(NEGATIONS)
        name = check_attribute(text[0 if wanted else 1 :], known, what=f"{what} entry")
        if any(n == name for n, _ in out):
            raise ConfigError(f"{what} names {name} twice: {list(specs)}")
        out.append((name, wanted))
    return out


def request_label(request: Sequence[tuple[str, bool]]) -> str:
    """``Male-Young-noEyeglasses``: a request as a file-name part."""
    return "-".join(name if wanted else f"no{name}" for name, wanted in request)
