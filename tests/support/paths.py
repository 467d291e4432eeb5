"""Where the checkout's files are, for tests that read the repository itself."""

from __future__ import annotations

from pathlib import Path
from typing import Final

#: The checkout's root (pyproject.toml, docs/, examples/, deploy/).
REPO: Final = Path(__file__).resolve().parents[2]
DOCS: Final = REPO / "docs"
EXAMPLES: Final = REPO / "examples"
DEPLOY: Final = REPO / "deploy"
#: Screenshots and logs a failing test leaves for a person to look at (git-ignored).
ARTIFACTS: Final = REPO / "tests" / "artifacts"
