"""ModelAI Desktop: the window, a view of the engine. The engine never imports this package."""
