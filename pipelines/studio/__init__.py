"""The local Studio: executions, the model registry and endpoints in the browser (`python -m pipelines.studio`)."""
