import sys

from lakefs.cli.main import main

sys.exit(main())
