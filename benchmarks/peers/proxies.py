"""The balancers benchmarks/balancer.py compares, their configurations (pure), and the upstreams
they sit in front of.

Systems: ``direct`` (wrk calls one replica, no balancer: the baseline), ``direct fleet`` (one wrk
per replica at once, no balancer: what the replicas serve together), mltoolkit's balancer
(``ewma``, the default policy, and ``least_request`` on each data plane, haproxy and python;
``round_robin`` on python), nginx (round robin, ``least_conn``) and HAProxy
(``roundrobin``, ``leastconn``), each one process with one thread. Configurations are generated from
``proxy_configs/*.template``; ``launch`` only writes files and returns the command.
"""

from __future__ import annotations

import string
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

CONFIGS = Path(__file__).resolve().parent / "proxy_configs"
TIMEOUT_S = 60
UPSTREAM_ANSWER = '{"predictions":[0]}'


@dataclass(frozen=True)
class Balancer:
    """A system under test: ``kind`` is direct / mltoolkit / nginx / haproxy."""

    kind: str
    method: str
    data_plane: str = ""  # mltoolkit's: haproxy (the default) or python

    @property
    def label(self) -> str:
        if self.kind == "direct":
            return "direct (no balancer)" if self.method == "-" else "direct fleet (no balancer)"
        if self.data_plane:
            return f"{self.kind} {self.method} [{self.data_plane}]"
        return f"{self.kind} {self.method}"


DIRECT = Balancer("direct", "-")
DIRECT_FLEET = Balancer("direct", "fleet")
# the default policy on the default data plane: the goals are measured on it
OURS = Balancer("mltoolkit", "ewma", "haproxy")
NGINX_LEAST = Balancer("nginx", "least_conn")
HAPROXY_LEAST = Balancer("haproxy", "leastconn")
BALANCERS: tuple[Balancer, ...] = (
    DIRECT,
    OURS,
    Balancer("mltoolkit", "least_request", "haproxy"),
    Balancer("mltoolkit", "ewma", "python"),
    Balancer("mltoolkit", "round_robin", "python"),
    Balancer("mltoolkit", "least_request", "python"),
    Balancer("nginx", "round_robin"),
    NGINX_LEAST,
    Balancer("haproxy", "roundrobin"),
    HAPROXY_LEAST,
)


def select_balancers(only: Sequence[str]) -> list[Balancer]:
    """``direct`` always (it is the baseline) plus those whose label contains any of ``only``."""
    if not only:
        return list(BALANCERS)
    words = [w.lower() for w in only]
    chosen = [b for b in BALANCERS if b.kind == "direct" or any(w in b.label.lower() for w in words)]
    if len(chosen) == 1:
        labels = ", ".join(repr(b.label) for b in BALANCERS)
        raise ValueError(f"--only {list(only)} matches no balancer; they are {labels}")
    return chosen


def _render(template: str, **values: object) -> str:
    return string.Template((CONFIGS / template).read_text()).substitute(**values)


def _host_port(url: str) -> str:
    return url.removeprefix("http://").rstrip("/")


def upstream_config(ports: Mapping[str, int], workdir: str) -> str:
    """nginx answering ``UPSTREAM_ANSWER`` on each port, with ``X-Replica: NAME``."""
    servers = "\n".join(
        f"    server {{\n"
        f"        listen 127.0.0.1:{port};\n"
        f"        location / {{\n"
        f"            default_type application/json;\n"
        f"            add_header X-Replica {name} always;\n"
        f"            return 200 '{UPSTREAM_ANSWER}';\n"
        f"        }}\n"
        f"    }}"
        for name, port in ports.items()
    )
    return _render("nginx_upstream.conf.template", workdir=workdir, servers=servers)


def nginx_config(port: int, replicas: Mapping[str, str], method: str, workdir: str) -> str:
    if method not in ("round_robin", "least_conn"):
        raise ValueError(f"nginx method {method!r}; expected 'round_robin' or 'least_conn'")
    servers = "\n".join(f"        server {_host_port(url)};" for url in replicas.values())
    return _render(
        "nginx_proxy.conf.template", workdir=workdir, port=port, servers=servers,
        timeout_s=TIMEOUT_S,
        method="# round robin (the default)" if method == "round_robin" else "least_conn;",
    )  # fmt: skip


def haproxy_config(port: int, replicas: Mapping[str, str], method: str) -> str:
    if method not in ("roundrobin", "leastconn"):
        raise ValueError(f"HAProxy method {method!r}; expected 'roundrobin' or 'leastconn'")
    servers = "\n".join(f"    server {name} {_host_port(url)}" for name, url in replicas.items())
    return _render(
        "haproxy.cfg.template", port=port, servers=servers, method=method, timeout_s=TIMEOUT_S
    )


def mltoolkit_command(port: int, replicas: Mapping[str, str], policy: str, data_plane: str) -> list[str]:
    command = [sys.executable, "-m", "mltoolkit.balancer", "--port", str(port),
               "--policy", policy, "--timeout", str(TIMEOUT_S), "--data-plane", data_plane]  # fmt: skip
    for name, url in replicas.items():
        command += ["--replica", f"{name}={url}"]
    return command


def balancer_command(
    balancer: Balancer, port: int, replicas: Mapping[str, str], workdir: Path
) -> list[str]:
    """The command that runs ``balancer`` on ``port`` in front of ``replicas`` (writing its
    configuration file into ``workdir``); ``direct`` has none."""
    if balancer.kind == "mltoolkit":
        return mltoolkit_command(port, replicas, balancer.method, balancer.data_plane)
    if balancer.kind == "nginx":
        path = workdir / f"nginx-{balancer.method}-{port}.conf"
        path.write_text(nginx_config(port, replicas, balancer.method, str(workdir)))
        return ["nginx", "-p", str(workdir), "-c", str(path)]
    if balancer.kind == "haproxy":
        path = workdir / f"haproxy-{balancer.method}-{port}.cfg"
        path.write_text(haproxy_config(port, replicas, balancer.method))
        return ["haproxy", "-db", "-f", str(path)]
    raise ValueError(f"{balancer.label} has no process of its own")
