"""Jobs: the SQLite history (store, records, connection), what a job is asked (specs), the runner."""
