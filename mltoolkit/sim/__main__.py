import sys

from mltoolkit.sim.cli import main

sys.exit(main())
