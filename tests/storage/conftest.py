"""Object storage tests share one real S3-compatible server (moto) for the whole run."""

from tests.cli.conftest import cli
from tests.helpers.s3 import s3

__all__ = ["cli", "s3"]
