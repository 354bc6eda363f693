"""`python -m buildwright` is the `buildwright` command."""

import sys

from buildwright.cli import main

sys.exit(main())
