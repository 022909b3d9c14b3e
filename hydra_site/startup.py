"""What the server says about itself when it starts: the trust rule it runs under (docs/trust.md)."""

from __future__ import annotations

from django.conf import settings


def trust_summary() -> str:
    """One line naming the trust settings in force, so that nobody has to guess why verdicts appear or wait."""
    replicas = settings.HYDRA_TRUST_REPLICAS
    rule = (
        "a lone viewer's features are accepted alone"
        if replicas == 1
        else f"{replicas} independent viewers (no shared account, device or network) must agree on a sample"
    )
    coverage = (
        "published videos are covered by their viewers only (tasks run in-process: no delayed coverage task)"
        if settings.CELERY_TASK_ALWAYS_EAGER
        else f"the server covers the rest {settings.HYDRA_TRUST_COVERAGE_DEADLINE_SECONDS} s after a video is ready "
        f"(up to {settings.HYDRA_TRUST_COVERAGE_MAX_DEADLINE_SECONDS} s by the uploader's record of clean uploads)"
    )
    where = "embedded default" if settings.EMBEDDED_DEFAULT else "REDIS_URL set"
    return (
        f"Trust ({where}): HYDRA_TRUST_REPLICAS={replicas}, {rule}; a contributor with fewer than "
        f"{settings.HYDRA_TRUST_PROBATION_RESULTS} server-verified results counts only beside an established one or "
        f"the server, which checks at most {settings.HYDRA_TRUST_PROBATION_CHECKS} of its samples because it is new; "
        f"established ones are checked at least {settings.HYDRA_TRUST_SPOT_CHECK_FLOOR:.0%}; "
        f"with fewer than {settings.HYDRA_TRUST_MIN_AUDIENCE} "
        f"independent established viewers (HYDRA_TRUST_MIN_AUDIENCE) arriving "
        f"{settings.HYDRA_TRUST_ARRIVAL_WINDOW_SECONDS:g} s apart it checks every agreed sample; heads score the "
        f"most severe of a sample's agreeing replicas, and a sample on fewer than two independent ones within "
        f"{settings.HYDRA_TRUST_BORDERLINE_MARGIN} of a head's threshold (HYDRA_TRUST_BORDERLINE_MARGIN) "
        f"or in a window a tolerated lie could carry across one is checked too; "
        f"{coverage}."
    )
