"""What `registry serve` writes to uvicorn's access log.

Every answered guard check (a 200 of /api/guard/check or /api/guard/check-batch) is already in the decision
log before it is returned: durably, hash-chained, with the caller's key name, the outcome and its reasons,
and searchable through GET /api/guard/decisions. Writing it to the access log as well doubled what a check
cost to record (about a sixth of its CPU time under load) and, at thousands of checks a second, filled the
access log with lines that say less than the decision log. So those lines are left out; every other request,
and every guard request that was refused or failed (4xx, 5xx: not in the decision log), is still logged.
"""

import copy
import logging
from typing import Any

import uvicorn.config

GUARD_ANSWER_PATHS = frozenset({"/api/guard/check", "/api/guard/check-batch"})


class SkipGuardAnswers(logging.Filter):
    """Drops uvicorn's access-log record of an answered guard check (see the module's docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn's access record: args = (client address, method, path with query, HTTP version, status code)
        args = record.args
        if not isinstance(args, tuple) or len(args) != 5:
            return True
        _, method, path, _, status = args
        return not (status == 200 and method == "POST" and str(path).partition("?")[0] in GUARD_ANSWER_PATHS)


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging configuration, with `SkipGuardAnswers` on its access log."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config.setdefault("filters", {})["skip_guard_answers"] = {"()": SkipGuardAnswers}
    config["handlers"]["access"]["filters"] = ["skip_guard_answers"]
    return config
