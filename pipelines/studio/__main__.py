import sys

from pipelines.studio.server import main

sys.exit(main())
