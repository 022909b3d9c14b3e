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
