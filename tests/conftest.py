"""Make the checkout importable as ansible_collections.nospof.webstack."""

import sys
from pathlib import Path

COLLECTIONS_ROOT = Path(__file__).resolve().parents[1] / "collections"
if str(COLLECTIONS_ROOT) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_ROOT))
