"""Ray for `fer-yolo batch`: a local instance started for the run, or an existing cluster.

Ray is an optional dependency (`pip install -e ".[cluster]"`), imported here only. The local instance
binds to 127.0.0.1 alone: Ray's cluster mode registers a node under the machine's network address and
listens on every interface, while its single-machine mode (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read once
when ray is imported) keeps every socket on loopback. Joining a cluster (`address`) leaves Ray as it is. Ray's
usage statistics are off in this process and the local instance (RAY_USAGE_STATS_ENABLED=0): left on, Ray asks
the cloud metadata address (169.254.169.254) which cloud it runs in and reports to usage-stats.ray.io, and
nothing but the address the user names may be contacted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from collections.abc import Iterator
from types import ModuleType

from fer_yolo.config import default_of
from fer_yolo.errors import FerYoloError

LOGGER = logging.getLogger(__name__)
#: "0": Ray's single-machine mode, every socket on 127.0.0.1.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
#: Ray 2.60 turns token authentication on for a new local instance (writing ~/.ray/auth_token if missing) and
#: says so in a warning from this logger on every run; that notice alone is kept out of the output.
_AUTH_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"


def _not_the_token_notice(record: logging.LogRecord) -> bool:
    """Drops Ray's notice that it enabled token authentication; its warning that a cluster has none stays."""
    return "Token authentication is enabled" not in record.getMessage()


#: "0": no usage statistics, so no request to the cloud metadata address or to Ray's collector.
USAGE_STATS_ENV = "RAY_USAGE_STATS_ENABLED"


def import_ray(local: bool = True) -> ModuleType:
    """The ray module, its usage statistics off; for a local run imported in single-machine (loopback-only)
    mode.

    Raises:
        FerYoloError: Ray is not installed (the hint names the extra that installs it).
    """
    os.environ[USAGE_STATS_ENV] = "0"  # read when ray.init runs, and inherited by the local instance
    if local and "ray" not in sys.modules:
        os.environ.setdefault(LOOPBACK_ENV, "0")
    try:
        import ray
    except ImportError as e:
        raise FerYoloError(
            "fer-yolo batch runs on Ray, which is not installed",
            'pip install -e ".[cluster]" (Ray and pyarrow); predict, stream and serve do not need it',
        ) from e
    return ray


def _check_reachable(address: str) -> None:
    """HOST:PORT (or ray://HOST:PORT) accepts a connection: Ray itself retries a wrong address for minutes."""
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except (OSError, ValueError) as e:
        raise FerYoloError(
            f"no Ray cluster answers at {address}: {e}",
            "pass the head node's HOST:PORT, auto on a node of the cluster, or no --address (a local Ray)",
        ) from e


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[ModuleType]:
    """Start a local Ray (address "") or join a cluster ("auto" or HOST:PORT); shut down or leave on exit.

    Args:
        address: "" for a local Ray of this run only, "auto" for the cluster this machine belongs to,
            HOST:PORT for the head node of another one (None: `batch.address`).
        num_cpus: Local Ray: CPUs it may use (None: all of this machine's).

    Yields:
        The ray module, initialised.

    Raises:
        FerYoloError: Ray is missing or the cluster cannot be reached.

    Example:
        >>> with ray_session(num_cpus=2) as ray:  # doctest: +SKIP
        ...     ray.cluster_resources()["CPU"]
        2.0
    """
    address = default_of(address, "batch.address")
    local = not address
    if not local and address != "auto":
        _check_reachable(address)
    ray = import_ray(local)
    options = {"log_to_driver": False, "logging_level": logging.WARNING}
    if local:  # always a new instance: never one that `ray start` left running on this machine
        options |= {"address": "local", "num_cpus": num_cpus, "include_dashboard": False}
        notices = logging.getLogger(_AUTH_NOTICE_LOGGER)
        if _not_the_token_notice not in notices.filters:
            notices.addFilter(_not_the_token_notice)
    else:
        options["address"] = address
    try:
        ray.init(**options)
    except (ConnectionError, ValueError) as e:
        raise FerYoloError(
            f"cannot join the Ray cluster at {address}: {e}",
            "is the cluster up (`ray status` on its head)? With token authentication, Ray's default, export "
            "RAY_AUTH_MODE=token here, with the cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN",
        ) from e
    try:
        if local and ray.util.get_node_ip_address() not in LOOPBACK:
            LOGGER.warning(
                "the local Ray listens on %s, not loopback only: ray was imported before fer-yolo could set "
                "%s=0 (set it in the environment)",
                ray.util.get_node_ip_address(),
                LOOPBACK_ENV,
            )
        yield ray
    finally:
        ray.shutdown()
