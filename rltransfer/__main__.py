"""``python -m rltransfer``: the same as the ``rltransfer`` command."""

import sys

from rltransfer.cli import main

sys.exit(main())
