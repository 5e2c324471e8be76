"""A local Redis Cluster of throwaway redis-servers: 3 masters with a replica each, on
loopback ports chosen at run time (`redis-server --cluster-enabled yes` + `redis-cli
--cluster create`, no Docker).

Tests use `redis_cluster()`; CI uses the command line around a test run:

    python -m tests.support.redis_cluster start DIR     # prints the URL of one node
    python -m tests.support.redis_cluster stop DIR      # kills every node started in DIR
"""

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from tests.support.redis_servers import VOLATILE, RedisServer
from tests.support.waiting import eventually

MASTERS = 3
# A failed master is replaced after this (ms); short, so a failover fits in a test.
NODE_TIMEOUT_MS = 1000


def cluster_port() -> int:
    """A free port P whose cluster bus port P + 10000 is free too (Redis needs P <= 55535)."""
    rng = random.SystemRandom()
    while True:
        port = rng.randrange(20_000, 45_000)
        if all(_free(p) for p in (port, port + 10_000)):
            return port


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_args(extra: Sequence[str] = ()) -> list[str]:
    return [
        "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
        *VOLATILE,
        *extra,
    ]  # fmt: skip


@dataclass
class LocalCluster:
    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    async def masters(self) -> list[RedisServer]:
        """The live nodes that are masters now (after a failover, a former replica)."""
        found = []
        for node in self.nodes:
            if node.process is None or node.process.returncode is not None:
                continue
            client = node.client()
            try:
                if (await client.info("replication")).get("role") == "master":
                    found.append(node)
            finally:
                await client.aclose()
        return found

    async def master_of(self, key: str) -> RedisServer:
        for node in await self.masters():
            client = node.client()
            try:
                slot = int(await client.execute_command("CLUSTER", "KEYSLOT", key))  # type: ignore[no-untyped-call]
                owner = await client.execute_command("CLUSTER", "NODES")  # type: ignore[no-untyped-call]
            finally:
                await client.aclose()
            for line in str(owner).splitlines():
                fields = line.split()
                if "myself" in fields[2] and "master" in fields[2]:
                    for span in fields[8:]:
                        low, _, high = span.partition("-")
                        if low.isdigit() and int(low) <= slot <= int(high or low):
                            return node
        raise AssertionError(f"no live master serves {key}")

    async def until_healthy(self) -> None:
        """Every live node says cluster_state:ok and all slots are served."""

        async def healthy() -> bool:
            for node in self.nodes:
                if node.process is None or node.process.returncode is not None:
                    continue
                client = node.client()
                try:
                    info = await client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
                except Exception:
                    return False
                finally:
                    await client.aclose()
                text = info if isinstance(info, str) else str(info)
                if "cluster_state:ok" not in text:
                    return False
            return True

        await eventually(healthy, within=60)

    def kill_now(self) -> None:
        for node in self.nodes:
            node.kill_now()


async def start_cluster(directory: Path, *, masters: int = MASTERS) -> LocalCluster:
    ports: set[int] = set()
    while len(ports) < 2 * masters:
        ports.add(cluster_port())
    nodes = [
        RedisServer(directory / f"node{n}", args=cluster_args(), port=port)
        for n, port in enumerate(sorted(ports))
    ]
    cluster = LocalCluster(nodes)
    try:
        await asyncio.gather(*(node.start() for node in nodes))
        redis_cli = shutil.which("redis-cli")
        assert redis_cli, "redis-cli is not on PATH"
        create = await asyncio.create_subprocess_exec(
            redis_cli,
            "--cluster", "create",
            *(f"127.0.0.1:{node.port}" for node in nodes),
            "--cluster-replicas", "1",
            "--cluster-yes",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await create.communicate()
        assert create.returncode == 0, out.decode()
        await cluster.until_healthy()
        await until_replicas_linked(nodes)
    except BaseException:
        cluster.kill_now()
        raise
    return cluster


async def until_replicas_linked(nodes: Sequence[RedisServer]) -> None:
    async def linked() -> bool:
        for node in nodes:
            client: Redis = node.client()
            try:
                info = await client.info("replication")
            finally:
                await client.aclose()
            if info.get("role") == "slave" and info.get("master_link_status") != "up":
                return False
        return True

    await eventually(linked, within=60)


@contextlib.asynccontextmanager
async def redis_cluster(directory: Path) -> AsyncIterator[LocalCluster]:
    """A running local cluster, every node killed afterwards whatever happened."""
    cluster = await start_cluster(directory)
    try:
        yield cluster
    finally:
        cluster.kill_now()
        for node in cluster.nodes:
            if node.process is not None:
                await node.process.wait()


# -- command line (CI) -------------------------------------------------------------------


async def _start_detached(directory: Path) -> str:
    cluster = await start_cluster(directory)
    (directory / "pids").write_text(
        "\n".join(str(n.process.pid) for n in cluster.nodes if n.process is not None)
    )
    return cluster.url


def _stop(directory: Path) -> None:
    pids = directory / "pids"
    if not pids.exists():
        return
    for pid in pids.read_text().split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    pids.unlink()


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        sys.stderr.write(__doc__ or "")
        return 2
    directory = Path(argv[1]).resolve()
    if argv[0] == "start":
        _stop(directory)
        shutil.rmtree(directory, ignore_errors=True)  # a new cluster: no old nodes.conf
        directory.mkdir(parents=True)
        sys.stdout.write(asyncio.run(_start_detached(directory)) + "\n")
    else:
        _stop(directory)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
