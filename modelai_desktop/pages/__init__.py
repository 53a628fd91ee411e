"""One module per page of the main window's navigation (Data, Train, Predict, Jobs, Models)."""
