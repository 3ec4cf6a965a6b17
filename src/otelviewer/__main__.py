"""``python -m otelviewer serve``: the same as the ``otelviewer`` command."""

from __future__ import annotations

import sys

from otelviewer.cli import main

sys.exit(main())
