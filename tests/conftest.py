"""Shared test helpers: the read-only reference folder ``../shared`` beside the project."""
import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"


def shared_path(*parts):
    """Path inside ``../shared``; skips the test when the folder is absent (fails in CI, where it must exist)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        message = f"reference data {path} is not available (it lives in ../shared beside the project)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI=true requires it")
        pytest.skip(message)
    return path
