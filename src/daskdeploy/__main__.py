"""``python -m daskdeploy``: the same as the ``daskdeploy`` command."""

from daskdeploy.cli import main

if __name__ == "__main__":
    main()
