"""Reliability suite: write the figures the tests recorded when the session ends (see figures.py)."""

from .figures import write_figures


def pytest_sessionfinish(session, exitstatus):
    write_figures()
