import sys

from sarzoo.cli import main

sys.exit(main())
