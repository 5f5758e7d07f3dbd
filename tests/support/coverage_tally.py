"""Counts of a catalog test's outcomes, summed in the main pytest process so they hold with xdist and in any order.

A test joins a tally with `record_property("coverage", TALLY)` (or `"coverage_refused"` for an entry that is refused
on purpose); the terminal summary prints served/attempted per tally.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest


class CoverageTally:
    def __init__(self) -> None:
        self.outcomes: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for key, value in report.user_properties:
            if key == "coverage":
                self.outcomes[str(value)][report.outcome] += 1
            elif key == "coverage_refused":
                self.outcomes[str(value)]["refused" if report.passed else "failed"] += 1

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        for tally, counts in sorted(self.outcomes.items()):
            attempted = counts["passed"] + counts["failed"]
            line = f"{tally}: served {counts['passed']}/{attempted + counts['refused']}"
            if counts["refused"]:
                line += f", refused at pack with a reason: {counts['refused']}"
            terminalreporter.write_line(line)
