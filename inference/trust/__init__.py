"""Trust and coverage: untrusted browsers, verified results, and no video left unanalysed.

The pure policy lives in ``assignment`` (who computes which sample), ``agreement`` (when two
feature vectors of one frame say the same thing), ``spot_checks`` (how often the server
recomputes an accepted sample) and ``paintings`` (how honest browsers paint a frame).
``services`` applies them to the database and returns what it changed (``FollowUps``);
``tasks`` runs the server's own recomputations and the coverage deadline in Celery.
docs/trust.md has the threat model.
"""
