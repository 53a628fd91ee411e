"""ModelAI Desktop: the window, a view of the engine. The engine never imports this package."""

import time

# When the first module of the window started to load: the start-up times in the log count from here.
STARTED_AT = time.perf_counter()
