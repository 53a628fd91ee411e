"""ModelAI engine: the headless core (rasters, models, training, inference, jobs).

It never imports Qt: the desktop window and the command line are two views of it.
"""

__version__ = "0.1.0"
