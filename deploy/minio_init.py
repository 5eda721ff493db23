"""One-shot MinIO set-up for the facegate compose stack (service ``minio-init``).

Run once after MinIO is healthy and before the facegate services start::

    python deploy/minio_init.py            # every setting from the environment
    python deploy/minio_init.py --dry-run  # print the plan, connect to nothing

It is idempotent (safe to run on every ``docker compose up``) and does, in
this order:

1. waits for MinIO (bounded: ``MINIO_INIT_TIMEOUT_S``, default 60 s) by
   asking for the bucket with the root credentials;
2. creates the bucket ``FACEGATE_BUCKET`` when it is missing;
3. when the services have their own key (``FACEGATE_S3_ACCESS_KEY`` differs
   from ``MINIO_ROOT_USER``): adds or updates that MinIO user and attaches a
   policy that allows object reads and writes in that one bucket, nothing
   else, so the services never hold the root credentials;
4. wires the bucket's ``s3:ObjectCreated:*`` events under ``uploads/`` to the
   webhook target ``MINIO_WEBHOOK_ID`` (``arn:minio:sqs::<ID>:webhook``); the
   MinIO server must define that target with
   ``MINIO_NOTIFY_WEBHOOK_ENABLE_<ID>=on`` and its endpoint, token and queue
   directory (docker-compose.yml does);
5. reads the notification configuration back and checks it.

It depends only on the ``minio`` package (and its ``urllib3``), not on
facegate, so it runs from any image that has the SDK. Exit status: 0 done,
1 configuration or MinIO error, 2 MinIO not reachable in time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import urllib3
from minio import Minio
from minio.credentials.providers import StaticProvider
from minio.error import MinioAdminException, MinioException, S3Error, ServerError
from minio.minioadmin import MinioAdmin
from minio.notificationconfig import NotificationConfig, PrefixFilterRule, QueueConfig

log = logging.getLogger("facegate.minio_init")

UPLOADS_PREFIX = "uploads/"
EVENTS = ("s3:ObjectCreated:*",)
POLICY_NAME = "facegate-service"
DEFAULT_WEBHOOK_ID = "FACEGATE"
DEFAULT_TIMEOUT_S = 60.0

TRANSIENT_S3_CODES = frozenset(
    {"XMinioServerNotInitialized", "ServiceUnavailable", "SlowDown", "InternalError"}
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_UNREACHABLE = 2


class InitError(Exception):
    """A configuration or MinIO error that retrying will not fix."""


class MinioUnreachableError(InitError):
    """MinIO did not answer within the allowed time."""


def _bool(name: str, text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise InitError(f"{name}={text!r}: want true or false")


@dataclass(frozen=True, kw_only=True)
class InitConfig:
    """What the set-up needs, read from the environment."""

    endpoint: str
    secure: bool
    root_user: str
    root_password: str
    bucket: str
    service_access_key: str
    service_secret_key: str
    webhook_id: str
    prefix: str = UPLOADS_PREFIX
    timeout_s: float = DEFAULT_TIMEOUT_S

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> InitConfig:
        def need(name: str) -> str:
            value = environ.get(name, "").strip()
            if not value:
                raise InitError(f"{name} must be set")
            return value

        endpoint = environ.get("FACEGATE_S3_ENDPOINT", "minio:9000").strip()
        if not endpoint or "://" in endpoint or "/" in endpoint:
            raise InitError(f"FACEGATE_S3_ENDPOINT={endpoint!r}: want host:port")
        webhook_id = environ.get("MINIO_WEBHOOK_ID", DEFAULT_WEBHOOK_ID).strip()
        if not webhook_id or not all(c.isalnum() or c == "_" for c in webhook_id):
            raise InitError(f"MINIO_WEBHOOK_ID={webhook_id!r}: want letters, digits or _")
        timeout_text = environ.get("MINIO_INIT_TIMEOUT_S", str(DEFAULT_TIMEOUT_S))
        try:
            timeout_s = float(timeout_text)
        except ValueError as exc:
            raise InitError(f"MINIO_INIT_TIMEOUT_S={timeout_text!r}: not a number") from exc
        if not 1.0 <= timeout_s <= 3600.0:
            raise InitError(f"MINIO_INIT_TIMEOUT_S={timeout_text!r}: want 1..3600")
        return cls(
            endpoint=endpoint,
            secure=_bool("FACEGATE_S3_SECURE", environ.get("FACEGATE_S3_SECURE", "false")),
            root_user=need("MINIO_ROOT_USER"),
            root_password=need("MINIO_ROOT_PASSWORD"),
            bucket=environ.get("FACEGATE_BUCKET", "facegate-uploads").strip(),
            service_access_key=need("FACEGATE_S3_ACCESS_KEY"),
            service_secret_key=need("FACEGATE_S3_SECRET_KEY"),
            webhook_id=webhook_id,
            timeout_s=timeout_s,
        )

    @property
    def separate_service_user(self) -> bool:
        return self.service_access_key != self.root_user


def webhook_arn(webhook_id: str) -> str:
    """The ARN MinIO gives the webhook target ``MINIO_NOTIFY_WEBHOOK_*_<ID>``."""
    return f"arn:minio:sqs::{webhook_id}:webhook"


def notification_config(webhook_id: str, prefix: str = UPLOADS_PREFIX) -> NotificationConfig:
    """Object-created events under ``prefix`` go to the webhook target."""
    return NotificationConfig(
        queue_config_list=[
            QueueConfig(
                list(EVENTS),
                config_id=f"facegate-{webhook_id.lower()}",
                prefix_filter_rule=PrefixFilterRule(prefix),
                queue=webhook_arn(webhook_id),
            )
        ]
    )


def service_policy(bucket: str) -> dict[str, Any]:
    """IAM policy of the services' user: one bucket, nothing else.

    Objects: read, write, delete. The bucket: list, and get/put its
    notification configuration, because ingest may (re)wire the webhook
    itself at start with ``FACEGATE_NOTIFICATIONS=minio``; the only target a
    notification can name is one the server defines (ingest's webhook)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "s3:GetBucketLocation",
                    "s3:ListBucket",
                    "s3:GetBucketNotification",
                    "s3:PutBucketNotification",
                ],
                "Resource": [f"arn:aws:s3:::{bucket}"],
            },
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": [f"arn:aws:s3:::{bucket}/*"],
            },
        ],
    }


def http_client() -> urllib3.PoolManager:
    """Short timeouts and no hidden retries: the wait loop does the retrying."""
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=5.0, read=30.0),
        retries=False,
    )


def _transient(exc: Exception) -> bool:
    if isinstance(exc, S3Error):
        return exc.code in TRANSIENT_S3_CODES
    return isinstance(exc, ServerError | urllib3.exceptions.HTTPError | OSError)


def wait_for_minio(
    client: Minio,
    bucket: str,
    timeout_s: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Wait until MinIO answers; return whether ``bucket`` exists.

    Connection errors and MinIO's "not initialised yet" answers are retried
    until ``timeout_s`` has passed (then :class:`MinioUnreachableError`); any other
    error (wrong credentials...) is raised at once as :class:`InitError`."""
    deadline = clock() + timeout_s
    delay = 0.25
    attempt = 0
    while True:
        attempt += 1
        try:
            return bool(client.bucket_exists(bucket))
        except (S3Error, ServerError, urllib3.exceptions.HTTPError, OSError) as exc:
            if not _transient(exc):
                raise InitError(f"MinIO refused the request: {exc}") from exc
            left = deadline - clock()
            if left <= 0:
                raise MinioUnreachableError(
                    f"MinIO did not answer within {timeout_s:g} s ({attempt} attempts): {exc}"
                ) from exc
            log.info("waiting for MinIO (attempt %d): %s", attempt, exc)
            sleep(min(delay, left))
            delay = min(delay * 2, 2.0)


def ensure_bucket(client: Minio, bucket: str, exists: bool) -> None:
    if exists:
        log.info("bucket %s exists", bucket)
        return
    try:
        client.make_bucket(bucket)
    except S3Error as exc:
        if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise InitError(f"cannot create bucket {bucket}: {exc}") from exc
    log.info("bucket %s created", bucket)


def ensure_service_user(admin: MinioAdmin, config: InitConfig) -> None:
    """Add (or update) the services' user and attach the bucket policy."""
    try:
        admin.policy_add(POLICY_NAME, policy=service_policy(config.bucket))
        admin.user_add(config.service_access_key, config.service_secret_key)
    except MinioAdminException as exc:
        raise InitError(f"cannot set up the service user: {exc}") from exc
    try:
        admin.attach_policy([POLICY_NAME], user=config.service_access_key)
    except MinioAdminException as exc:
        # Attaching a policy that is already attached is refused with
        # XMinioAdminPolicyChangeAlreadyApplied: the state is what we want.
        if "AlreadyApplied" not in str(exc):
            raise InitError(f"cannot attach policy {POLICY_NAME}: {exc}") from exc
    log.info("service user %s has policy %s", config.service_access_key, POLICY_NAME)


def wire_notifications(client: Minio, config: InitConfig) -> None:
    """Set the bucket notification and check that MinIO kept it."""
    arn = webhook_arn(config.webhook_id)
    try:
        client.set_bucket_notification(
            config.bucket, notification_config(config.webhook_id, config.prefix)
        )
        current = client.get_bucket_notification(config.bucket)
    except S3Error as exc:
        hint = ""
        if exc.code in ("InvalidArgument", "InvalidARNError"):
            hint = (
                f" (is MINIO_NOTIFY_WEBHOOK_ENABLE_{config.webhook_id}=on set on the MinIO"
                " server, with its endpoint?)"
            )
        raise InitError(f"cannot set the bucket notification to {arn}: {exc}{hint}") from exc
    queues = [q.queue for q in current.queue_config_list]
    if arn not in queues:
        raise InitError(f"bucket notification not kept by MinIO: want {arn}, have {queues}")
    log.info("bucket %s: %s under %s -> %s", config.bucket, ",".join(EVENTS), config.prefix, arn)


def plan(config: InitConfig) -> dict[str, Any]:
    """What :func:`run` will do, secrets left out (``--dry-run`` prints it)."""
    return {
        "endpoint": config.endpoint,
        "secure": config.secure,
        "bucket": config.bucket,
        "service_user": config.service_access_key if config.separate_service_user else None,
        "policy": service_policy(config.bucket) if config.separate_service_user else None,
        "notification": {
            "events": list(EVENTS),
            "prefix": config.prefix,
            "queue": webhook_arn(config.webhook_id),
        },
        "timeout_s": config.timeout_s,
    }


def run(config: InitConfig) -> None:
    http = http_client()
    client = Minio(
        config.endpoint,
        access_key=config.root_user,
        secret_key=config.root_password,
        secure=config.secure,
        http_client=http,
    )
    exists = wait_for_minio(client, config.bucket, config.timeout_s)
    ensure_bucket(client, config.bucket, exists)
    if config.separate_service_user:
        admin = MinioAdmin(
            endpoint=config.endpoint,
            credentials=StaticProvider(config.root_user, config.root_password),
            secure=config.secure,
            http_client=http,
        )
        ensure_service_user(admin, config)
    else:
        log.warning("the services use the MinIO root credentials; give them their own key")
    wire_notifications(client, config)


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="minio_init.py", description="Create the facegate bucket and wire its webhook."
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config = InitConfig.from_env(os.environ if environ is None else environ)
        if args.dry_run:
            sys.stdout.write(json.dumps(plan(config), indent=2, sort_keys=True) + "\n")
            return EXIT_OK
        run(config)
    except MinioUnreachableError as exc:
        log.error("%s", exc)
        return EXIT_UNREACHABLE
    except InitError as exc:
        log.error("%s", exc)
        return EXIT_ERROR
    except (MinioException, MinioAdminException, urllib3.exceptions.HTTPError, OSError) as exc:
        log.error("MinIO set-up failed: %s: %s", type(exc).__name__, exc)
        return EXIT_ERROR
    log.info("MinIO is set up for facegate")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
