"""`python -m transcribe_client`: the sample program."""

from __future__ import annotations

import sys

from transcribe_client.cli import main

sys.exit(main())
