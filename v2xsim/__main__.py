"""``python -m v2xsim`` is the same as the ``v2xsim`` command."""

from v2xsim.cli import main

raise SystemExit(main())
