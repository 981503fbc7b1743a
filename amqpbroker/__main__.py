import sys

from amqpbroker.cli import main

sys.exit(main())
