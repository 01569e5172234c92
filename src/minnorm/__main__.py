"""`python -m minnorm`: the `minnorm` command (minnorm.cli)."""

from minnorm.cli import main

if __name__ == "__main__":
    main()
