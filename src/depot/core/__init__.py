"""The pure domain core: models, the ten rules, the matcher, the day. No I/O: no boto3, FastAPI or
prometheus_client."""
