import sys

from targets.agent.loop import main

sys.exit(main())
