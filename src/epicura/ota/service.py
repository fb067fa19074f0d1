"""What other modules may call of the OTA module."""

from __future__ import annotations

from epicura.ota.releases import UPLOAD_ERRORS, UploadRefused, list_releases, update_release
from epicura.ota.releases import get_or_404 as release_or_404
from epicura.ota.releases import upload_release as upload_release
from epicura.ota.rollouts import act as rollout_action
from epicura.ota.rollouts import create as create_rollout
from epicura.ota.rollouts import get_or_404 as rollout_or_404
from epicura.ota.rollouts import list_rollouts
from epicura.ota.updates import offer, record_status
from epicura.ota.views import release_view, rollout_view

__all__ = ["UPLOAD_ERRORS", "UploadRefused", "create_rollout", "list_releases", "list_rollouts",
           "offer", "record_status", "release_or_404", "release_view", "rollout_action",
           "rollout_or_404", "rollout_view", "update_release", "upload_release"]
