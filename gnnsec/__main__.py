import sys

from gnnsec.cli import main

sys.exit(main())
