"""An app module whose import ends the process, as a crashing extension would.

Only for workers that import on their own (prefork with PRELOAD off).
"""

import os

os._exit(1)

app = None
