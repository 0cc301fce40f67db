"""Errors of node.privacy_audit (drawn in the project's tree in node/errors.py).

    NodeError
    └── PrivacyAuditError   a membership-inference audit that cannot run: no checkpoint
                            or no completed round, a model that does not fit the config,
                            too few patients in a group for the statistic ...

Data and config problems keep their own classes (ManifestError, ConfigError, PeerError)
from the code that reads them.
"""

from __future__ import annotations

from node.errors import NodeError

__all__ = ["PrivacyAuditError"]


class PrivacyAuditError(NodeError):
    """A privacy audit cannot run; the message says why and what to do."""
