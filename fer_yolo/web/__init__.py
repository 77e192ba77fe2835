"""`fer-yolo serve`: the web page and JSON API (FastAPI), on the same Pipeline as `stream`."""
