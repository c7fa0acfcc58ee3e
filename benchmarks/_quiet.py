"""Silences what would bury a benchmark's table: tqdm bars, Lightning's banners, warnings.

Imported by the benchmarks before anything else imports tqdm or Lightning, because of two
import-time settings: tqdm reads its ``TQDM_*`` default overrides once, when it is imported (so
``TQDM_DISABLE`` must be set first), and Lightning sets its loggers to INFO when it is imported
(so their levels must be lowered after).
"""

import logging
import os
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")
warnings.filterwarnings("ignore")

import lightning  # noqa: E402, F401  (resets its loggers to INFO: lower them after)

for name in ("lightning.pytorch", "lightning.fabric"):
    logging.getLogger(name).setLevel(logging.ERROR)
