"""The publication policy setting is checked at start-up: a typo must not publish everything."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from videos.checks import check_publication_policy


@pytest.mark.parametrize("policy", ["immediate", "hold"])
def test_known_publication_policies_pass(settings, policy):
    settings.HYDRA_PUBLICATION_POLICY = policy
    assert check_publication_policy() == []


@pytest.mark.parametrize("policy", ["Hold", "held", ""])
def test_an_unknown_publication_policy_stops_the_site(settings, policy):
    settings.HYDRA_PUBLICATION_POLICY = policy
    errors = check_publication_policy()
    assert [error.id for error in errors] == ["videos.E001"]
    with pytest.raises(SystemCheckError, match="HYDRA_PUBLICATION_POLICY"):
        call_command("check")
