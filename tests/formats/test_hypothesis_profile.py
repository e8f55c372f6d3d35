"""The property tests' Hypothesis profile (tests/conftest.py): right answers never fail on time."""

import os

from hypothesis import HealthCheck, settings


def test_property_tests_have_no_deadline_and_no_too_slow_check():
    assert settings.default.deadline is None
    assert HealthCheck.too_slow in settings.default.suppress_health_check


def test_ci_draws_the_same_examples_every_run():
    ci = settings.get_profile("ci")
    assert ci.derandomize and ci.database is None and ci.deadline is None
    if os.environ.get("CI"):
        assert settings.default.derandomize
