"""``nanoct live`` argument handling and the publish helper (the 0MQ round trip itself is in
test_zmq.py)."""

from __future__ import annotations

import pytest
from bluesky import RunEngine

from nanoct.live import main, parse_address, parse_slices, publish


def test_parse_address_and_slices():
    assert parse_address("host.example:5578") == ("host.example", 5578)
    assert parse_address("5578") == ("localhost", 5578)
    for bad in ("host:port", "host:0", ":70000"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_address(bad)
    assert parse_slices(None) is None
    assert parse_slices("64") == 64
    assert parse_slices("10:20") == slice(10, 20)
    assert parse_slices("3,40,64") == [3, 40, 64]
    with pytest.raises(ValueError, match="slices='x' must be 'k', 'a:b' or 'i,j,k'"):
        parse_slices("x")


def test_main_refuses_bad_input(capsys):
    assert main(["--proxy", "nowhere"]) == 2
    assert "must be HOST:PORT" in capsys.readouterr().err
    assert main(["--proxy", "localhost:5578", "--path-map", "no-equals-sign"]) == 2
    assert "--path-map 'no-equals-sign' must be OLD=NEW" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([])  # --proxy is required


def test_publish_sends_the_documents_and_never_stops_the_run():
    import pickle
    import time

    import zmq
    from bluesky.plans import count
    from ophyd import Signal

    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)  # what a proxy's in port is: a bound SUB socket
    port = sub.bind_to_random_port("tcp://127.0.0.1")
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    RE = RunEngine({})
    token, publisher = publish(RE, f"127.0.0.1:{port}")
    try:
        for _ in range(50):  # PUB/SUB: runs are lost until the subscription has reached it
            RE(count([]))
            if sub.poll(200):
                break
            time.sleep(0.1)
        while sub.poll(500):  # what got through of those
            sub.recv()
        (uid,) = RE(count([Signal(name="s", value=1.0)], num=2))
        names = []
        while sub.poll(2000):
            _, name, doc = sub.recv().split(b" ", 2)
            names.append(name.decode())
            if name == b"start":
                assert pickle.loads(doc)["uid"] == uid
            if name == b"stop":
                break
        assert names == ["start", "descriptor", "event", "event", "stop"]
        publisher.close()  # a dead publisher raises on every document ...
        RE(count([Signal(name="s", value=1.0)]))  # ... and the run goes on
    finally:
        RE.unsubscribe(token)
        sub.close()
        ctx.term()
