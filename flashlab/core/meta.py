"""The old name of flashlab.core.provenance, kept only until every importer uses the new one.

TODO: system/platforms/compose.py still imports `flashlab.core.meta.checkout_root`; it is being
split on another branch, so it is not edited here. Delete this module once that branch has
merged and imports flashlab.core.provenance.
"""

from __future__ import annotations

from flashlab.core.provenance import checkout_root

__all__ = ["checkout_root"]
