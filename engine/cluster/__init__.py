"""Predicting an archive of rasters on a Dask cluster: one raster per task, one job in the local store.

``modelai predict ... --cluster local:N | tcp://HOST:PORT | SCHEDULER.json`` hands each raster to
Dask (https://distributed.dask.org) as a task that runs the same `engine.inference.predict` code as a local
run. The client (this process) keeps the job store, checks that every worker sees the paths
(`engine.cluster.worker`), sends the model file once, skips rasters whose outputs are already
complete, and records each raster as it finishes (`engine.cluster.archive`). Dask's
``distributed`` package is an optional extra, imported only when a cluster run starts
(`engine.cluster.connect`).
"""
