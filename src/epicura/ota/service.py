"""What other modules may call of the OTA module."""

from __future__ import annotations

from epicura.ota.releases import get_or_404 as release_or_404
from epicura.ota.rollouts import get_or_404 as rollout_or_404
from epicura.ota.updates import offer, record_status

__all__ = ["offer", "record_status", "release_or_404", "rollout_or_404"]
