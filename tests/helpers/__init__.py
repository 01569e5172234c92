"""Shared test code: independent references (`reference`), synthetic run files (`runs`), image
files (`image_files`), training fixtures (`training`), workflow runs (`workflow`) and the CF
compliance check (`cf`). Test modules import from here, never from each other."""

from pathlib import Path

# The repository root (tests/helpers/__init__.py -> two levels up).
REPO = Path(__file__).resolve().parents[2]
