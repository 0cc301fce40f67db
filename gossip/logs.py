"""The one place where py-libp2p's logging is configured.

py-libp2p's ``libp2p`` logger has no handler and ``propagate=False`` unless LIBP2P_DEBUG is
set, so its warnings land raw on stderr through logging's last-resort handler.  We make it
propagate to the application's handlers and keep it quiet (ERROR) by default;
``MEDGOSSIP_LIBP2P_LOG=DEBUG|INFO|WARNING`` raises the verbosity.  LIBP2P_DEBUG, when set,
keeps libp2p's own configuration.
"""

from __future__ import annotations

import logging
import os

__all__ = ["configure_libp2p_logging", "logger"]

logger = logging.getLogger("gossip")


def configure_libp2p_logging(level: int | str | None = None) -> None:
    if os.environ.get("LIBP2P_DEBUG"):
        return
    chosen = level if level is not None else os.environ.get("MEDGOSSIP_LIBP2P_LOG", "ERROR")
    libp2p_logger = logging.getLogger("libp2p")
    libp2p_logger.handlers.clear()
    libp2p_logger.propagate = True
    libp2p_logger.setLevel(chosen.upper() if isinstance(chosen, str) else chosen)
    # Some libp2p modules pin their own logger's level at import (auto_connector: INFO,
    # logging every 10 s); let them inherit the level chosen here instead.
    for name, child in logging.root.manager.loggerDict.items():
        if name.startswith("libp2p.") and isinstance(child, logging.Logger):
            child.setLevel(logging.NOTSET)
    # async_service logs task failures under its own name.
    logging.getLogger("async_service").setLevel(libp2p_logger.level)
