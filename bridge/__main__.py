"""`python -m bridge`: the same command line as `dingtalk-bridge` (see bridge.cli.main)."""

import sys

from bridge.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
