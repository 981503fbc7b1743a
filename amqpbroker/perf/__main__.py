"""``python -m amqpbroker.perf``"""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
