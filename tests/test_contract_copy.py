"""The HTTP contract ships inside the repository (docs/CONTRACT.md), so a clone is whole;
it must stay the shared contract word for word."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "CONTRACT.md"


@pytest.mark.skipif(not SHARED.exists(), reason="no shared/ folder beside this checkout")
def test_the_contract_in_docs_is_the_shared_one() -> None:
    assert (ROOT / "docs" / "CONTRACT.md").read_text() == SHARED.read_text(), (
        "docs/CONTRACT.md differs from ../shared/CONTRACT.md: copy the shared one over it"
    )
