"""What the split network produces and what the server concludes from it.

A ``ModelVersion`` is one CNN chunk (the browser and the server compute the same features
with it). A ``ClientSession`` is one computer that contributed features for one video: a
viewer's browser, or the server itself (``is_server``). ``FrameFeature`` rows hold the
compact per-frame vectors; heads (``Head``/``HeadVersion``) turn them into per-frame
``FrameScore`` rows and one ``Verdict`` per video and category.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from videos.models import Video


class ModelVersion(models.Model):
    """A CNN chunk registered under the hash of its content; browsers load it by that hash."""

    name = models.CharField(max_length=100)
    content_hash = models.CharField(max_length=64, unique=True, help_text="sha256 of the browser artefacts.")
    feature_size = models.PositiveIntegerField()
    preprocessing = models.JSONField(help_text="How a frame becomes the input tensor (size, scaling, resize).")
    quantisation = models.JSONField(help_text="How features are packed on the wire and in storage.")
    artefact_dir = models.CharField(max_length=255, help_text="Relative to HYDRA_MODEL_ROOT.")
    is_active = models.BooleanField(default=False, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=models.Q(is_active=True), name="one_active_model")
        ]

    def __str__(self) -> str:
        return f"{self.name} [{self.content_hash[:12]}]"


class ClientSession(models.Model):
    """One contributor of features for one video and model version."""

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        CLOSED = "closed", "Closed"
        QUARANTINED = "quarantined", "Quarantined"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="client_sessions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="client_sessions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="client_sessions"
    )
    device_id = models.CharField(max_length=64, blank=True, db_index=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    backend = models.CharField(max_length=16, blank=True)
    is_server = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE, db_index=True)
    state_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        who = "server" if self.is_server else (self.backend or "browser")
        return f"{who} session {str(self.id)[:8]} on {self.video_id}"


class FrameFeature(models.Model):
    """One quantised feature vector for one sample time, from one session."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending verification"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"

    # Every batch of every viewer inserts here, so indexes are few: (video, model_version, sample_ms)
    # and the unique (session, sample_ms) also serve lookups by video and by session, and status is
    # always filtered together with a video.
    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="frame_features", db_index=False)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="frame_features")
    session = models.ForeignKey(ClientSession, on_delete=models.CASCADE, related_name="frame_features", db_index=False)
    sample_ms = models.PositiveIntegerField()
    vector = models.BinaryField(help_text="feature_size bytes, uint8, dequantised with the model's quantisation.")
    backend = models.CharField(max_length=16, blank=True)
    inference_ms = models.FloatField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "sample_ms"], name="one_feature_per_session_sample"),
        ]
        indexes = [models.Index(fields=["video", "model_version", "sample_ms"], name="feature_coverage_idx")]

    def __str__(self) -> str:
        return f"{self.video_id}@{self.sample_ms}ms by {self.session_id}"


# A head's threshold is a probability; its severity (1 low to 5 critical) weighs queue priority.
# The database enforces both (Head.Meta.constraints); services and the admin read the same limits.
MIN_THRESHOLD, MAX_THRESHOLD = 0.0, 1.0
MIN_SEVERITY, MAX_SEVERITY = 1, 5


class Head(models.Model):
    """A moderation category, answered by the active version of its head."""

    class Kind(models.TextChoices):
        FRAME = "frame", "Per frame"
        TEMPORAL = "temporal", "Temporal"

    MIN_THRESHOLD, MAX_THRESHOLD = MIN_THRESHOLD, MAX_THRESHOLD
    MIN_SEVERITY, MAX_SEVERITY = MIN_SEVERITY, MAX_SEVERITY

    category = models.SlugField(max_length=40, unique=True)
    label = models.CharField(max_length=80)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    threshold = models.FloatField(help_text="Score at or above which a video is flagged.")
    severity = models.PositiveSmallIntegerField(default=1, help_text="1 (low) to 5 (critical); weighs queue priority.")
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["category"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(threshold__gte=MIN_THRESHOLD, threshold__lte=MAX_THRESHOLD),
                name="head_threshold_is_a_probability",
            ),
            models.CheckConstraint(
                condition=models.Q(severity__gte=MIN_SEVERITY, severity__lte=MAX_SEVERITY), name="head_severity_1_to_5"
            ),
        ]

    def __str__(self) -> str:
        return self.label


class HeadVersion(models.Model):
    """Weights of one head; the previous versions stay for rollback."""

    head = models.ForeignKey(Head, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="head_versions")
    weights_path = models.CharField(max_length=255, blank=True, help_text="Relative to HYDRA_MODEL_ROOT.")
    config = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["head", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["head", "version"], name="unique_head_version"),
            models.UniqueConstraint(
                fields=["head"], condition=models.Q(is_active=True), name="one_active_version_per_head"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.head.category} v{self.version}"


class FrameScore(models.Model):
    """A head's score at one sample time (temporal heads: the highest of the windows that contain it)."""

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="frame_scores")
    head_version = models.ForeignKey(HeadVersion, on_delete=models.CASCADE, related_name="frame_scores")
    sample_ms = models.PositiveIntegerField()
    score = models.FloatField()
    class_scores = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["video", "head_version", "sample_ms"]
        constraints = [
            models.UniqueConstraint(fields=["video", "head_version", "sample_ms"], name="unique_frame_score"),
        ]

    def __str__(self) -> str:
        return f"{self.head_version} on {self.video_id}@{self.sample_ms}ms: {self.score:.3f}"


class Verdict(models.Model):
    """A head's conclusion about a whole video, recomputed as coverage grows."""

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="verdicts")
    head_version = models.ForeignKey(HeadVersion, on_delete=models.PROTECT, related_name="verdicts")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="verdicts")
    score = models.FloatField()
    threshold = models.FloatField()
    flagged = models.BooleanField(default=False, db_index=True)
    segments = models.JSONField(default=list, help_text="[[start_ms, end_ms, score], ...] above threshold.")
    top_frames = models.JSONField(default=list, help_text="[[sample_ms, score], ...] highest first.")
    coverage = models.FloatField(help_text="Share of sample times with accepted features, 0..1.")
    stages = models.JSONField(
        default=dict,
        blank=True,
        help_text='What each stage concluded: {"screen": {...}, "confirm": {...}} (docs/models.md, nudity cascade).',
    )
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["video", "head_version"]
        constraints = [models.UniqueConstraint(fields=["video", "head_version"], name="one_verdict_per_head_version")]

    def __str__(self) -> str:
        return f"{self.head_version} on {self.video_id}: {self.score:.3f}"


class ConfirmationScore(models.Model):
    """A second network's score of one frame the server decoded itself from the rendition (a flag's confirmation).

    Kept per video, confirmer and sample time, so analysing the video again (coverage grew, a quarantine)
    reuses it: the confirmer runs once per flagged frame, whatever happens to the verdict afterwards.
    """

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="confirmation_scores")
    confirmer = models.CharField(max_length=64, help_text="Which network scored it, e.g. nsfwjs_inception_v3.")
    sample_ms = models.PositiveIntegerField()
    score = models.FloatField()
    class_scores = models.JSONField(default=dict, blank=True)
    computed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["video", "confirmer", "sample_ms"]
        constraints = [
            models.UniqueConstraint(fields=["video", "confirmer", "sample_ms"], name="one_confirmation_per_frame"),
            models.CheckConstraint(
                condition=models.Q(score__gte=0.0, score__lte=1.0), name="confirmation_score_is_a_probability"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.confirmer} on {self.video_id}@{self.sample_ms}ms: {self.score:.3f}"


# --- Trust and coverage (inference.trust): who computes what, and how far each contributor is trusted ---


class Contributor(models.Model):
    """A record or a quarantine across sessions (inference.trust.contributors says whose).

    Records are kept per account, else per network (anonymous devices on one /24 share one),
    else per device or session; quarantines per account, else device, else session.
    ``consecutive_valid`` counts distinct videos with a result the server itself verified since
    the last wrong one; it sets the spot-check rate (inference.trust.spot_checks).
    ``probation_checks`` counts the checks drawn because the record was new, which a record gets
    a small budget of over its whole life (a reset does not refill it). A quarantined
    contributor's features are discarded and its later sessions refused.
    """

    key = models.CharField(
        max_length=120,
        unique=True,
        help_text='"user:<id>", "net:<network>", "device:<id>" or "session:<uuid>" (inference.trust.contributors).',
    )
    consecutive_valid = models.PositiveIntegerField(default=0)
    valid_total = models.PositiveIntegerField(default=0)
    invalid_total = models.PositiveIntegerField(default=0)
    probation_checks = models.PositiveIntegerField(default=0)
    quarantined_at = models.DateTimeField(null=True, blank=True, db_index=True)
    quarantine_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.key} ({'quarantined' if self.quarantined_at else f'{self.consecutive_valid} valid'})"


class ContributorVideo(models.Model):
    """A video that advanced a contributor's record: a record grows at most once per distinct video.

    Many sessions of one person on one video (a farm of issue 12) are one result, whatever they send.
    """

    contributor = models.ForeignKey(Contributor, on_delete=models.CASCADE, related_name="credited_videos")
    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="+")
    credited_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["contributor", "video"], name="one_credit_per_video")]

    def __str__(self) -> str:
        return f"{self.contributor_id} credited for video {self.video_id}"


class ProbationCheck(models.Model):
    """A check the server drew on a video because the record was new: one per record and video, ever.

    Written when the check is drawn, with the charge to ``Contributor.probation_checks``, so a later
    settlement pass of the same video (before the check's recomputation has credited the record)
    draws nothing more there: the check already drawn is the one that can credit it.
    """

    contributor = models.ForeignKey(Contributor, on_delete=models.CASCADE, related_name="probation_checked_videos")
    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="+")
    drawn_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["contributor", "video"], name="one_probation_check_per_video")]

    def __str__(self) -> str:
        return f"{self.contributor_id} probation-checked on video {self.video_id}"


class SampleAssignment(models.Model):
    """A sample time the server asked one session to compute; anything else it sends is refused."""

    session = models.ForeignKey(ClientSession, on_delete=models.CASCADE, related_name="sample_assignments")
    sample_ms = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "sample_ms"], name="one_assignment_per_sample")]

    def __str__(self) -> str:
        return f"{self.session_id}@{self.sample_ms}ms"


class Recomputation(models.Model):
    """A sample the server computes itself, and why: the work queue and the record of the server's share."""

    class Reason(models.TextChoices):
        DISPUTE = "dispute", "Replicas disagreed"
        SPOT_CHECK = "spot_check", "Random spot check"
        FLAG = "flag", "Flagged segment before a case"
        QUARANTINE = "quarantine", "Contributor quarantined"
        COVERAGE = "coverage", "Not covered by the deadline"
        BORDERLINE = "borderline", "A window head's score near its threshold"

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="recomputations")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="recomputations")
    sample_ms = models.PositiveIntegerField()
    reason = models.CharField(max_length=16, choices=Reason.choices)
    requested_at = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["video", "model_version", "sample_ms"],
                condition=models.Q(done_at__isnull=True),
                name="one_open_recomputation_per_sample",
            )
        ]

    def __str__(self) -> str:
        return f"{self.video_id}@{self.sample_ms}ms ({self.reason})"


class TrainingClip(models.Model):
    """Features of one labelled training video, cached so that training again does not decode it again.

    Keyed by the file's content (sha256), the CNN version and the sample interval: the same file
    under another name or in another folder is found in the cache; a new CNN or interval is not.
    """

    sha256 = models.CharField(max_length=64)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="training_clips")
    interval_ms = models.PositiveIntegerField()
    source_name = models.CharField(max_length=255, help_text="File name when first seen, for reports.")
    duration_ms = models.PositiveIntegerField()
    sample_ms = models.JSONField(help_text="Sample times of the rows of ``vectors``, ascending.")
    vectors = models.BinaryField(help_text="len(sample_ms) x feature_size bytes, quantised like FrameFeature.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sha256", "model_version", "interval_ms"], name="one_cached_training_clip"),
        ]

    def __str__(self) -> str:
        return f"{self.source_name} [{self.sha256[:12]}] {len(self.sample_ms)} samples"
