import socket

from mltoolkit.local.ports import LOWEST_PORT, ephemeral_low, free_ports


def test_ports_are_distinct_and_bindable():
    ports = free_ports(5)
    assert len(set(ports)) == 5
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # raises if the port were taken


def test_ports_are_below_the_ephemeral_range_that_outgoing_connections_use(tmp_path):
    ports = free_ports(20)
    assert all(LOWEST_PORT <= port < ephemeral_low() for port in ports)
    (tmp_path / "range").write_text("32768\t60999\n")
    assert ephemeral_low(tmp_path / "range") == 32768
    assert ephemeral_low(tmp_path / "missing") == 32768
