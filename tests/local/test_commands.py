import pytest

from mltoolkit.errors import SpecError
from mltoolkit.local.commands import (
    BALANCER,
    REPLICA,
    check_data_plane_installed,
    check_nodes,
    command_summary,
    plan_frame,
    plan_processes,
    ports_needed,
    thread_env,
)
from mltoolkit.spec import BalancerSpec, BatchingSpec, DeploymentSpec, ModelSpec


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "m.joblib"
    path.write_bytes(b"not read by the planner")
    return str(path)


def make_spec(model_file, **kwargs):
    batching = kwargs.pop("batching", BatchingSpec())
    return DeploymentSpec(model=ModelSpec.from_file(model_file, "digits", batching=batching), **kwargs)


def test_replicas_go_round_robin_over_nodes_then_the_balancer(model_file):
    spec = make_spec(model_file, replicas=5)
    processes = plan_processes(spec, nodes=2, ports=[101, 102, 103, 104, 105, 200])
    assert [p.role for p in processes] == [REPLICA] * 5 + [BALANCER]
    assert [p.name for p in processes[:5]] == [f"digits-{i}" for i in range(5)]
    assert [p.node for p in processes[:5]] == ["node-0", "node-1", "node-0", "node-1", "node-0"]
    assert processes[-1].node is None
    assert [p.port for p in processes] == [101, 102, 103, 104, 105, 200]


def test_replica_command_carries_model_batching_and_request_limit(model_file):
    spec = make_spec(
        model_file,
        replicas=1,
        max_request_bytes=4096,
        batching=BatchingSpec(max_batch_size=16, max_wait_ms=2.5),
    )
    replica = plan_processes(spec, 1, [5000, 5001], python="py")[0]
    argv = list(replica.argv)
    assert argv[:3] == ["py", "-m", "mltoolkit.serving"]

    def value(flag):
        return argv[argv.index(flag) + 1]

    assert value("--model-path") == model_file
    assert value("--model-name") == "digits"
    assert value("--port") == "5000"
    assert value("--replica-id") == "digits-0"
    assert value("--host") == "127.0.0.1"
    assert value("--max-request-bytes") == "4096"
    assert value("--max-batch-size") == "16"
    assert value("--max-wait-ms") == "2.5"
    assert "--no-batching" not in argv
    assert replica.ready_url == "http://127.0.0.1:5000/v2/health/ready"


def test_disabled_batching_becomes_no_batching(model_file):
    spec = make_spec(model_file, replicas=1, batching=BatchingSpec(enabled=False))
    argv = plan_processes(spec, 1, [1, 2])[0].argv
    assert "--no-batching" in argv
    assert "--max-batch-size" not in argv


def test_balancer_command_lists_every_replica_with_its_node(model_file):
    spec = make_spec(
        model_file,
        replicas=3,
        balancer=BalancerSpec(
            policy="round_robin", health_interval_s=0.5, retries=2, request_timeout_s=7, data_plane="python"
        ),
    )
    balancer = plan_processes(spec, 2, [11, 12, 13, 20])[-1]
    argv = list(balancer.argv)
    assert argv[1:3] == ["-m", "mltoolkit.balancer"]
    replicas = [argv[i + 1] for i, a in enumerate(argv) if a == "--replica"]
    assert replicas == [
        "digits-0=http://127.0.0.1:11@node-0",
        "digits-1=http://127.0.0.1:12@node-1",
        "digits-2=http://127.0.0.1:13@node-0",
    ]
    for flag, expected in [
        ("--port", "20"),
        ("--policy", "round_robin"),
        ("--health-interval", "0.5"),
        ("--retries", "2"),
        ("--timeout", "7"),
        ("--data-plane", "python"),
    ]:
        assert argv[argv.index(flag) + 1] == expected
    assert balancer.ready_url == "http://127.0.0.1:20/-/health"
    assert "--hedge" not in argv  # off unless BalancerSpec(hedge=True)


def test_a_hedging_balancer_spec_gives_the_balancer_hedge(model_file):
    spec = make_spec(model_file, balancer=BalancerSpec(hedge=True, data_plane="python"))
    *_, balancer = plan_processes(spec, 1)
    assert "--hedge" in balancer.argv


def test_the_data_plane_reaches_every_balancer(model_file):
    spec = make_spec(model_file, replicas=2, balancer=BalancerSpec(data_plane="haproxy", balancers=2))
    balancers = [p for p in plan_processes(spec, 1) if p.role == BALANCER]
    assert len(balancers) == 2
    for balancer in balancers:
        argv = list(balancer.argv)
        assert argv.count("--data-plane") == 1
        assert argv[argv.index("--data-plane") + 1] == "haproxy"


def test_the_haproxy_data_plane_needs_the_haproxy_binary(model_file):
    haproxy = make_spec(model_file, balancer=BalancerSpec(data_plane="haproxy"))
    with pytest.raises(SpecError) as info:
        check_data_plane_installed(haproxy, None)  # shutil.which("haproxy") found nothing
    assert info.value.field == "BalancerSpec.data_plane"
    assert "apt-get install haproxy" in str(info.value)
    assert 'data_plane="python"' in str(info.value)
    check_data_plane_installed(haproxy, "/usr/sbin/haproxy")  # installed: nothing to say
    python = make_spec(model_file, balancer=BalancerSpec(data_plane="python"))
    check_data_plane_installed(python, None)  # the python data plane needs none


def test_image_models_cannot_run_locally():
    spec = DeploymentSpec(model=ModelSpec.from_image("gcr.io/x/y:1", "digits"))
    with pytest.raises(SpecError) as info:
        plan_processes(spec, 1)
    assert info.value.field == "ModelSpec.path"
    assert "gcr.io/x/y:1" in str(info.value)


@pytest.mark.parametrize("nodes", [0, -1, 65, "2", 1.5, True, None])
def test_bad_node_counts_name_the_field(nodes):
    with pytest.raises(SpecError) as info:
        check_nodes(nodes)
    assert info.value.field == "LocalTarget.nodes"
    assert "1 to 64" in str(info.value)


def test_plan_frame_has_one_row_per_process_and_costs_nothing(model_file):
    spec = make_spec(model_file, replicas=3, cpu="250m", memory="256Mi")
    frame = plan_frame(spec, plan_processes(spec, 3))
    assert list(frame["kind"]) == ["replica"] * 3 + ["balancer"]
    assert list(frame["node"][:3]) == ["node-0", "node-1", "node-2"]
    assert set(frame["port"]) == {"auto"}
    assert list(frame["cpu"][:3]) == ["250m"] * 3
    assert list(frame["memory"][:3]) == ["256Mi"] * 3
    assert frame["usd_per_hour"].sum() == 0
    assert frame["command"][0].startswith("mltoolkit.serving --model-path")


def test_command_summary_drops_the_interpreter():
    assert command_summary(["/x/python", "-m", "mod", "--a", "1"]) == "mod --a 1"
    assert command_summary(["prog", "--a"]) == "prog --a"


def test_thread_caps_follow_the_cpu_request():
    assert thread_env(500)["OMP_NUM_THREADS"] == "1"
    assert thread_env(2000)["OPENBLAS_NUM_THREADS"] == "2"


def test_k_balancers_share_the_endpoint_port_each_with_its_own_admin_port(model_file):
    spec = make_spec(model_file, replicas=2, balancer=BalancerSpec(balancers=3))
    assert ports_needed(spec) == 2 + 1 + 3
    processes = plan_processes(spec, 1, [11, 12, 20, 31, 32, 33])
    balancers = processes[2:]
    assert [(p.role, p.name, p.port, p.admin_port) for p in balancers] == [
        (BALANCER, "digits-balancer-0", 20, 31),
        (BALANCER, "digits-balancer-1", 20, 32),
        (BALANCER, "digits-balancer-2", 20, 33),
    ]
    for process in balancers:
        argv = list(process.argv)
        assert argv[argv.index("--port") + 1] == "20" and "--reuse-port" in argv
        assert argv[argv.index("--admin-port") + 1] == str(process.admin_port)
        assert [argv[i + 1] for i, a in enumerate(argv) if a == "--replica"] == [
            "digits-0=http://127.0.0.1:11@node-0", "digits-1=http://127.0.0.1:12@node-0",
        ]  # fmt: skip
        # health is read where only this process answers; clients use the shared port
        assert process.ready_url == process.live_url == f"http://127.0.0.1:{process.admin_port}/-/health"
        assert process.url == "http://127.0.0.1:20"
    one = plan_processes(make_spec(model_file, replicas=2), 1, [11, 12, 20])[-1]
    assert "--reuse-port" not in one.argv and "--admin-port" not in one.argv and one.name == "digits-balancer"
    with pytest.raises(ValueError, match="need 6 ports"):
        plan_processes(spec, 1, [11, 12, 20])

