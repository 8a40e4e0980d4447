"""Test hook: make this process kill itself (SIGKILL) at a named step of a job, for the crash tests.

The multi-worker tests set CRAWL_TEST_DIE_AT=<step> in one worker's environment (steps: after-claim,
mid-fetch, after-links, after-commit, after-ack; see crawler.crawl and crawler.jobs), so a crash at
each step is deterministic rather than a race against a timer. Unset (always, outside the tests), a
step costs one comparison.
"""

from __future__ import annotations

import os
import signal

STEPS = ("after-claim", "mid-fetch", "after-links", "after-commit", "after-ack")
_DIE_AT = os.environ.get("CRAWL_TEST_DIE_AT")


def reached(step: str) -> None:
    """The job reached `step`: die here if the test asked for it."""
    if step == _DIE_AT:
        os.kill(os.getpid(), signal.SIGKILL)
