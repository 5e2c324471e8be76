"""The processes: the API (api.py, its uvicorn server pieces in server.py, its operations
endpoints in ops.py), the worker (worker.py, with its HTTP side in worker_http.py), and the
services both start from (services.py)."""
