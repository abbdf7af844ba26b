"""``python -m logitkit``: see :mod:`logitkit.cli`."""

from .cli import main

raise SystemExit(main())
