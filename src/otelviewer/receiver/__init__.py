"""The OTLP receivers: gRPC on 4317 (``grpc.py``), HTTP on 4318 (``http.py``).

Both decode with ``otlp.py`` and hand each request to a ``store.Writer`` as one
``Batch``; they answer only after the write has committed, so an acknowledged
request is stored.
"""
