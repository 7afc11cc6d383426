"""The check registry: check name -> "module:Class" (a `flashlab.analysis.checks.check.Check`).

A new check is one file here plus one line below; the summary keys, the clause vocabulary, the
report's check table and the JUnit/markdown check cases all follow from this registry.
"""

from __future__ import annotations

from flashlab.core.registry import Registry

CHECKS = Registry(
    "check",
    {
        "oversell": "flashlab.analysis.checks.consistency:Oversell",
        "negative_stock": "flashlab.analysis.checks.consistency:NegativeStock",
        "lost_acknowledged": "flashlab.analysis.checks.consistency:LostAcknowledged",
        "duplicate_purchases": "flashlab.analysis.checks.consistency:DuplicatePurchases",
        "phantom_orders": "flashlab.analysis.checks.consistency:PhantomOrders",
        "conservation": "flashlab.analysis.checks.consistency:Conservation",
        "server_errors": "flashlab.analysis.checks.consistency:ServerErrors",
        "undersold": "flashlab.analysis.checks.undersold:Undersold",
        "premature_sold_out": "flashlab.analysis.checks.premature_sold_out:PrematureSoldOut",
        "unknown_answers": "flashlab.analysis.checks.consistency:UnknownAnswers",
    },
)
