"""sealserve's app for granian (`--factory peers.granian_app:app`): the service config named by SEALSERVE_BENCH_CONFIG."""

import os
from pathlib import Path

from fastapi import FastAPI

from sealserve.serve import create_app, load_config
from sealserve.serve.observability.access_log import configure_logging


def app() -> FastAPI:
    config = load_config(Path(os.environ["SEALSERVE_BENCH_CONFIG"]))
    configure_logging(config.observability.log_format)
    return create_app(config)
