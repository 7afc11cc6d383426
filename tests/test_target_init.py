"""`flashlab target init --openapi`: a target file drafted from a real backend's OpenAPI document.

The PostgreSQL shop (tests/targets/pg-shop, FastAPI) publishes /openapi.json with its POST
/orders, its 201 answer model and 409 examples ("sold out", "already ordered"). The draft must
find that operation, fill the body with {product}/{user}, read 201 as ok with the order id's
path, and turn each 409 example into its own rule; with reset and truth filled in by hand (as
the draft's TODOs ask), the probe must classify every answer.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support import ROOT
from support import assert_one_line_error
from support import run_flashlab

from flashlab.core.platform import StackConfig
from flashlab.core.target import load_target
from flashlab.system.targets.processes import ProcessTarget

pytestmark = pytest.mark.skipif(
    not list(Path("/usr/lib/postgresql").glob("*/bin/postgres")) and not shutil.which("postgres"),
    reason="PostgreSQL server not installed (make test installs it)",
)


@pytest.fixture(scope="module")
def shop() -> Iterator[ProcessTarget]:
    platform = ProcessTarget(load_target(ROOT / "targets" / "pg-atomic.yaml"), StackConfig())
    try:
        platform.start()
        yield platform
    finally:
        platform.stop()


def test_the_draft_reads_the_purchase_operation_and_its_answers(
    shop: ProcessTarget, tmp_path: Path
) -> None:
    out = tmp_path / "draft.yaml"
    proc = run_flashlab(
        "target", "init", "--openapi", f"{shop.base_url()}/openapi.json", "--out", str(out),
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "TODO" in text.split("name:")[0]  # the header says what is left to write
    draft = yaml.safe_load(text)
    assert draft["base_url"] == shop.base_url()
    assert draft["buy"] == {
        "method": "POST",
        "path": "/orders",
        "json": {"sku": "{product}", "customer": "{user}"},
    }
    rules = {(r["status"], r.get("body"), r["outcome"]) for r in draft["answers"]}
    assert (409, "sold\\ out", "sold_out") in rules
    assert (409, "already\\ ordered", "already_purchased") in rules
    ok = next(r for r in draft["answers"] if r["outcome"] == "ok")
    assert ok["status"] == 201 and ok["order_id"] == "$.order.id"
    assert ok["remaining"] == "$.stock_left"
    load_target(out)  # a valid target file as drafted


def test_the_draft_completed_by_hand_probes_clean(shop: ProcessTarget, tmp_path: Path) -> None:
    out = tmp_path / "draft.yaml"
    url = f"{shop.base_url()}/openapi.json"
    assert (
        run_flashlab("target", "init", "--openapi", url, "--out", str(out), timeout=60).returncode
        == 0
    )
    draft = yaml.safe_load(out.read_text())
    shipped = yaml.safe_load((ROOT / "targets" / "pg-atomic.yaml").read_text())
    db = f"postgresql://shop@127.0.0.1:{shop.values['db_port']}/postgres"
    draft["reset"] = {"sql": shipped["reset"]["sql"], "sql_url": db}
    draft["truth"] = {"sql": {**shipped["truth"]["sql"], "url": db}}
    out.write_text(yaml.safe_dump(draft, sort_keys=False))
    proc = run_flashlab("target", "probe", str(out), "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json

    outcomes = [a["outcome"] for a in json.loads(proc.stdout)["answers"]]
    assert outcomes == ["ok", "ok", "already_purchased", "ok", "sold_out", "sold_out"]


def test_a_document_without_a_purchase_is_one_line(tmp_path: Path) -> None:
    doc = tmp_path / "openapi.json"
    doc.write_text('{"openapi": "3.1.0", "paths": {"/health": {"get": {}}}}')
    proc = run_flashlab("target", "init", "--openapi", str(doc), timeout=60)
    assert_one_line_error(proc, "--openapi", "no POST that buys or orders", code=2)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert_one_line_error(
        run_flashlab("target", "init", "--openapi", str(bad), timeout=60), "--openapi"
    )
