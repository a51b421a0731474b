"""``python -m datasets_build``: see :mod:`datasets_build.cli`."""

from .cli import main

raise SystemExit(main())
