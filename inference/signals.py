"""Signals the inference app sends, so other apps react without inference importing them.

Receivers must be idempotent: an analysis may run again for the same video (coverage grew, a
task was retried) and then sends the same signal again.
"""

from django.dispatch import Signal

# An analysis found a category's verdict at or above its threshold. kwargs: verdict.
# The moderation app opens (or updates) a case from it.
verdict_flagged = Signal()

# An analysis with full coverage found every trained category below its threshold.
# kwargs: video, verdicts. The moderation app's hold policy publishes held videos on it.
video_cleared = Signal()

# Follow-up work inside the inference app. Use cases send these instead of queueing Celery tasks,
# because the tasks call the use cases (a direct call would be an import cycle); the receivers in
# inference.scheduling queue the tasks. Sent once the change is committed (transaction.on_commit).

# New pending features were stored. kwargs: video_id, model_version_id. A settlement pass follows.
features_stored = Signal()

# Samples were queued for the server's own features. kwargs: video_id, model_version_id.
recomputation_requested = Signal()

# Trust changed a video's accepted features (a recomputation, a quarantine). kwargs: video_id.
# Its verdicts are computed again.
accepted_features_changed = Signal()

# A flag backed by the server's features needs its confirmer's scores (``services.flag_confirmation``).
# kwargs: video_id, head_version_id. The confirmer scores the flagged frames, then the video is analysed again.
flag_confirmation_requested = Signal()

# A video's coverage deadline was set or brought forward (moderation owns the policy: it reads the uploader's
# record and the video's cases). kwargs: video, due_at. Full coverage is due then; inference.scheduling starts
# the server early enough to finish by then.
coverage_deadline_set = Signal()
