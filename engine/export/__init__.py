"""Exporting trained models to other tools: ONNX files that the QGIS Deepness plugin runs as they are.

`onnx_file.export_onnx` writes the file; `graph` builds the network that goes into it (our
normalisation folded in, the task's head at the end); `deepness` writes the metadata the plugin
reads. onnx is an optional dependency (the ``onnx`` extra), imported only when exporting.
"""
