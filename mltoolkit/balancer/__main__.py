import sys

from mltoolkit.balancer.cli import main

sys.exit(main())
