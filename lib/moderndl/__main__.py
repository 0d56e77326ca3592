import sys

from moderndl.run import main

sys.exit(main())
