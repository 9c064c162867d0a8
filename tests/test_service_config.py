"""The published gRPC service config (clients/python/src/socialgraph/service_config.json):
what it retries, and a client using it riding through a server restart."""

from __future__ import annotations

import json
import threading
import time
from importlib import resources

import grpc

from harness import ServerProcess
from socialgraph.v1 import admin_pb2, social_graph_pb2, watch_pb2

from .support import Client, free_port, new_user

CONFIG = json.loads((resources.files("socialgraph") / "service_config.json").read_text())
NOT_IDEMPOTENT = {"socialgraph.v1.SocialGraphService/ReportUser"}  # a retry could file a second report
# A stream lives as long as its consumer reads: no deadline, and no retry
# (the consumer resumes from its last cursor, which the channel cannot know).
STREAMS = {"socialgraph.v1.WatchService/Watch"}


def configured_methods() -> dict[str, dict]:
    methods = {}
    for entry in CONFIG["methodConfig"]:
        for name in entry["name"]:
            key = f"{name['service']}/{name['method']}"
            assert key not in methods, f"{key} configured twice"
            methods[key] = entry
    return methods


def test_every_rpc_has_a_deadline_and_only_idempotent_ones_retry():
    methods = configured_methods()
    every = {
        f"{service.full_name}/{method.name}"
        for module, name in (
            (social_graph_pb2, "SocialGraphService"),
            (admin_pb2, "AdminService"),
            (watch_pb2, "WatchService"),
        )
        for service in [module.DESCRIPTOR.services_by_name[name]]
        for method in service.methods
    }
    assert set(methods) == every
    streaming = {
        f"{method.containing_service.full_name}/{method.name}"
        for module in (social_graph_pb2, admin_pb2, watch_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
        if method.server_streaming
    }
    assert streaming == STREAMS
    for key, entry in methods.items():
        assert entry["waitForReady"] is True
        if key in STREAMS:
            assert "timeout" not in entry and "retryPolicy" not in entry, key
            continue
        assert entry["timeout"].endswith("s")
        policy = entry.get("retryPolicy")
        if key in NOT_IDEMPOTENT:
            assert policy is None, key
            continue
        assert policy is not None, key
        assert set(policy["retryableStatusCodes"]) <= {"UNAVAILABLE", "ABORTED"}  # never RESOURCE_EXHAUSTED


def start(address: str, database: str) -> ServerProcess:
    """Not waited for: the client's calls meet the server while it starts."""
    return ServerProcess("--database-url", database, "--grace-period", "1", address=address)


def run_through_restart(tmp_path, options) -> tuple[int, list[grpc.StatusCode], int]:
    """Calls Follow and GetCounts in a loop while the server is killed and
    started again on the same port; returns (calls, failures, calls after the restart)."""
    address = f"127.0.0.1:{free_port()}"
    database = f"sqlite:///{tmp_path}/restart.db"
    first = start(address, database)
    failures: list[grpc.StatusCode] = []
    calls = after = 0
    restarted = threading.Event()
    stop = threading.Event()
    second = None
    with grpc.insecure_channel(address, options=options) as channel:
        client = Client(channel)
        grpc.channel_ready_future(channel).result(timeout=20)

        def load() -> None:
            nonlocal calls, after
            user = new_user()
            while not stop.is_set():
                try:
                    client.follow(new_user(), user)
                    client.counts(user)
                except grpc.RpcError as error:
                    failures.append(error.code())
                calls += 1
                after += restarted.is_set()

        worker = threading.Thread(target=load)
        worker.start()
        try:
            time.sleep(0.5)
            first.kill()  # calls in flight are cut off mid-way
            first.wait(timeout=30)
            second = start(address, database)
            restarted.set()
            deadline = time.monotonic() + 20
            while after < 20 and time.monotonic() < deadline and not failures:
                time.sleep(0.05)
        finally:
            stop.set()
            worker.join(timeout=30)
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.terminate()
                    process.wait(timeout=30)
    return calls, failures, after


def test_calls_with_the_service_config_succeed_through_a_server_restart(tmp_path):
    options = [("grpc.service_config", json.dumps(CONFIG)), ("grpc.enable_retries", 1)]
    calls, failures, after = run_through_restart(tmp_path, options)
    assert failures == [] and after >= 20, (calls, failures, after)


def test_without_it_the_same_restart_fails_calls(tmp_path):
    calls, failures, _ = run_through_restart(tmp_path, [])
    assert grpc.StatusCode.UNAVAILABLE in failures, (calls, failures)
