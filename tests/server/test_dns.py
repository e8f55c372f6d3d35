"""net.dns: the version record's TXT lookup, against real dnsmasq and, for what dnsmasq never does
(stray datagrams, truncation, silence), against a socket answering on loopback."""

import socket
import threading

import pytest
from conftest import free_udp_and_tcp_port

from pum.config import Nameserver
from pum.errors import UpstreamError
from pum.net.dns import lookup_txt

NAME = "current.cvd.clamav.test"
RECORD = "1.4.3:62:27001:1700000000:1:90:49192:336"


def test_the_txt_record_is_read_from_dnsmasq(dnsmasq):
    address, port = dnsmasq({NAME: RECORD})
    assert lookup_txt(NAME, (Nameserver(address, port),), 5.0) == RECORD


def test_a_name_dnsmasq_does_not_have_is_an_upstream_error(dnsmasq):
    address, port = dnsmasq({NAME: RECORD})
    with pytest.raises(UpstreamError, match="DNS: .*other.clamav.test"):
        lookup_txt("other.clamav.test", (Nameserver(address, port),), 5.0)


def test_a_closed_port_fails_at_once_naming_the_server():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UpstreamError, match=f"lookup of {NAME} failed: 127.0.0.1:{port}"):
        lookup_txt(NAME, (Nameserver("127.0.0.1", port),), 30.0)


def test_the_next_nameserver_answers_when_the_first_is_down(dnsmasq):
    address, port = dnsmasq({NAME: RECORD})
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    assert lookup_txt(NAME, (Nameserver("127.0.0.1", closed), Nameserver(address, port)), 5.0) == RECORD


class FakeServer:
    """A UDP (and TCP) socket on loopback answering each query by `reply(query) -> [datagrams]`."""

    def __init__(self, reply, tcp_reply=None) -> None:
        self.port = free_udp_and_tcp_port()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", self.port))
        self.tcp.listen(1)
        self.udp.settimeout(10)
        self.tcp.settimeout(10)
        self.reply, self.tcp_reply = reply, tcp_reply
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            message, client = self.udp.recvfrom(512)
            for datagram in self.reply(message):
                self.udp.sendto(datagram, client)
            if self.tcp_reply is not None:
                connection, _ = self.tcp.accept()
                with connection:
                    size = int.from_bytes(connection.recv(2), "big")
                    message = connection.recv(size)
                    answer = self.tcp_reply(message)
                    connection.sendall(len(answer).to_bytes(2, "big") + answer)
        except OSError:
            pass

    def close(self) -> None:
        self.udp.close()
        self.tcp.close()
        self.thread.join(timeout=10)


def answer_to(message: bytes, text: bytes, flags: int = 0x8180, query_id: bytes | None = None) -> bytes:
    question = message[12:]
    rdata = bytes([len(text)]) + text
    record = b"\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x3c" + len(rdata).to_bytes(2, "big") + rdata
    header = (query_id or message[:2]) + flags.to_bytes(2, "big") + b"\x00\x01\x00\x01\x00\x00\x00\x00"
    return header + question + record


@pytest.fixture
def fake_server():
    servers = []

    def start(reply, tcp_reply=None) -> int:
        servers.append(FakeServer(reply, tcp_reply))
        return servers[-1].port

    yield start
    for server in servers:
        server.close()


def test_a_reply_with_another_id_is_ignored_and_ours_taken(fake_server):
    def reply(message: bytes) -> list[bytes]:
        forged_id = bytes([message[0] ^ 0xFF, message[1]])
        return [answer_to(message, b"forged", query_id=forged_id), answer_to(message, RECORD.encode())]

    port = fake_server(reply)
    assert lookup_txt(NAME, (Nameserver("127.0.0.1", port),), 5.0) == RECORD


def test_a_truncated_answer_is_asked_again_over_tcp(fake_server):
    port = fake_server(
        lambda message: [answer_to(message, b"", flags=0x8380)], lambda m: answer_to(m, b"over tcp")
    )
    assert lookup_txt(NAME, (Nameserver("127.0.0.1", port),), 5.0) == "over tcp"


def test_a_silent_nameserver_is_a_timeout_within_the_lookups_bound(fake_server):
    port = fake_server(lambda message: [])
    with pytest.raises(UpstreamError, match=f"DNS: no answer for {NAME} within 0s"):
        lookup_txt(NAME, (Nameserver("127.0.0.1", port),), 0.3)


def test_nxdomain_says_the_name_does_not_exist(fake_server):
    port = fake_server(
        lambda message: [message[:2] + b"\x81\x83\x00\x01\x00\x00\x00\x00\x00\x00" + message[12:]]
    )
    with pytest.raises(UpstreamError, match=f"DNS: {NAME} does not exist"):
        lookup_txt(NAME, (Nameserver("127.0.0.1", port),), 5.0)
