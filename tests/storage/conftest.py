"""Object storage tests share one real S3-compatible server (moto) for the session."""

from tests.helpers.s3 import s3

__all__ = ["s3"]
