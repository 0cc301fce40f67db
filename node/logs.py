"""Logging for peer processes: one line per event, `key=value` pairs, to stderr.

Lines carry peer IDs, hashes and counts; never patient data or payload contents
(the code that logs is responsible for that; nothing here inspects messages).
"""

from __future__ import annotations

import logging
import sys


def setup_logging(verbose: bool = False, stream=sys.stderr) -> None:  # type: ignore[no-untyped-def]
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        logging.Formatter("%(asctime)s.%(msecs)03d %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("libp2p", "multiaddr", "web3", "urllib3", "opacus"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
