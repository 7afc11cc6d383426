"""schemathesis `run --checks all` against a running local stack's /openapi.json, through nginx: 0 failures.

This is the black-box view a user gets from `schemathesis run`: every check (server errors,
status codes, content types, response schemas, negative/positive data, missing headers,
unsupported methods with `Allow`, ...) over the examples, coverage, fuzzing and stateful
phases. nginx sits in front, so its own answers (TRACE 405, oversized input, malformed
requests) are held to the contract too. Seeded and bounded (MAX_EXAMPLES per operation, one
worker); the number of cases that ran is printed and asserted non-trivial.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flashlab.core.contract import ADMIN_HEADER
from flashlab.core.contract import PRODUCT_PATH
from flashlab.core.contract import ResetRequest
from flashlab.core.contract import Strategy
from flashlab.system.admin import AdminClient

MAX_EXAMPLES = 40  # per operation and phase: ~600 cases, about a minute here
SEED = 1
PRODUCT = "st"
StackFactory = Callable[..., Any]  # tests/conftest.py's make_stack

# positive_data_acceptance: schemathesis's defaults plus 410. A schema-valid buy of a product the
# fuzzer itself reset to stock 0 (its stateful phase calls /admin/reset) is answered 410
# `sold_out`: the contract's answer about the product, not a rejection of the request's data.
CONFIG = f"""
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "410", "429", "5xx"]

# The product that exists, for the one operation that takes a product id in its path.
[[operations]]
include-path = "{PRODUCT_PATH}"
parameters = {{ product_id = "{PRODUCT}" }}
"""


def schemathesis_cli() -> str:
    return str(Path(sys.executable).with_name("schemathesis"))


def test_schemathesis_all_checks_zero_failures(make_stack: StackFactory, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    report = tmp_path / "report.json"
    with make_stack(workers=2) as (_platform, info):
        with AdminClient(info.base_url, info.admin_token) as admin:
            admin.reset(ResetRequest(product_id=PRODUCT, stock=100_000, strategy=Strategy.lua))
        cmd = [
            schemathesis_cli(),
            "--config-file",
            str(config),
            "run",
            f"{info.base_url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--workers",
            "1",
            # The admin operation's auth, as a header (sent to every operation; the others ignore it).
            "--header",
            f"{ADMIN_HEADER}: {info.admin_token}",
            "--request-timeout",
            "10",
            "--report",
            "json",
            "--report-json-path",
            str(report),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert report.exists(), done.stdout[-3000:] + done.stderr[-2000:]
    result = json.loads(report.read_text())
    cases = result["test_cases"]
    print(f"schemathesis: {cases['generated']} cases, {cases['with_failures']} with failures")
    assert result["complete"], result["stop_reason"]
    assert result["operations"]["tested"] == result["operations"]["total"] >= 6
    assert cases["generated"] >= 100, cases  # it really ran (not a skipped or empty schema)
    assert result["failures"] == [] and result["errors"] == [], done.stdout[-6000:]
    assert done.returncode == 0, done.stdout[-6000:]
