"""``--admin-listen``: AdminService on its own address, and only there."""

from __future__ import annotations

import grpc
import pytest

from server.settings import load

from .support import free_port, raises, running_server
from .test_auth import ADMIN_TOKEN, GRAPH_TOKEN, STANDARD_TOKENS, follow, health_check, list_services, serving, stats


def unimplemented(call) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_admin_service_moves_to_its_own_address(tmp_path):
    admin = f"127.0.0.1:{free_port()}"
    with serving(tmp_path, admin_listen=admin) as (app, public):
        assert app.admin_port == int(admin.rpartition(":")[2])
        assert follow(public).created
        unimplemented(lambda: stats(public))
        assert stats(admin).users == 0
        unimplemented(lambda: follow(admin))
        assert health_check(public) == health_check(admin) == 1  # SERVING
        assert "socialgraph.v1.AdminService" not in list_services(public)
        assert "socialgraph.v1.SocialGraphService" not in list_services(admin)
        assert "socialgraph.v1.AdminService" in list_services(admin)


def test_the_admin_listener_checks_credentials_too(tmp_path):
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(STANDARD_TOKENS)
    admin = f"127.0.0.1:{free_port()}"
    with serving(tmp_path, admin_listen=admin, auth_tokens_file=str(tokens)) as (_, public):
        with raises(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"):
            stats(admin)
        with raises(grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE"):
            stats(admin, GRAPH_TOKEN)
        assert stats(admin, ADMIN_TOKEN).users == 0
        assert follow(public, GRAPH_TOKEN).created


def test_admin_listen_must_be_another_address():
    with pytest.raises(ValueError, match="admin_listen"):
        load(None, environ={"SOCIALGRAPH_LISTEN": "127.0.0.1:7000", "SOCIALGRAPH_ADMIN_LISTEN": "127.0.0.1:7000"})
    with pytest.raises(ValueError, match="admin_listen"):
        load(None, environ={"SOCIALGRAPH_ADMIN_LISTEN": "nowhere"})


@pytest.mark.e2e
def test_workers_serve_the_admin_listener_too(tmp_path):
    admin = f"127.0.0.1:{free_port()}"
    args = ("--workers", "2", "--admin-listen", admin, "--database-url", f"sqlite:///{tmp_path}/w.db",
            "--grace-period", "1")
    with running_server(*args) as (public, process):
        for _ in range(6):  # new connections land on either worker
            assert stats(admin).users == 0
            unimplemented(lambda: stats(public))
        assert follow(public).created
        process.terminate()
        assert process.wait(timeout=30) == 0
