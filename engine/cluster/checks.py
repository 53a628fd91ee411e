"""What is checked before a cluster run is queued, on the client: the rest is checked per raster
on the workers, so that one bad raster of thousands fails alone instead of refusing the job."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.cluster.connect import import_distributed, parse_address
from engine.inference.outputs import check_writable_folder
from engine.inference.predict import check_prediction_settings
from engine.models.file import check_model_file

if TYPE_CHECKING:
    from engine.jobs.specs import PredictSpec


def validate_cluster_prediction(spec: PredictSpec) -> list[str]:
    """Checks the ``--cluster`` value, that Dask is installed, the model and options, and that the
    output folder is writable from here; returns no warnings (the workers report theirs).

    Raises:
        ClusterError, ModelFileError, EngineError, OutputError: what to change, in the message.
    """
    assert spec.cluster is not None, "a local prediction is validated by engine.jobs.specs"
    parse_address(spec.cluster)
    import_distributed()
    check_model_file(spec.model)  # weights against the network too, as for a local run
    check_prediction_settings(spec.model, spec.options)
    check_writable_folder(spec.output_dir)
    return []
