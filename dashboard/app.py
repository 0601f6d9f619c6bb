"""Entry point: `streamlit run dashboard/app.py` (from the repository root or anywhere)."""

import sys
from pathlib import Path

# `streamlit run` puts dashboard/ on sys.path, not the repository root that holds the packages.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard.page import main  # noqa: E402

main()
