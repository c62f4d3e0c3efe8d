"""The in-process counting engine, the outage guard and the client-address parsing, on a fake clock."""

from __future__ import annotations

import ipaddress
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from limits import parse

from hardenkit.ratelimit.clients import mask_uri
from hardenkit.ratelimit.engine import Window, sliding_wait
from hardenkit.ratelimit.keys import ClientAddress, parse_ip, parse_networks, safe_key
from hardenkit.ratelimit.memory import LocalEngine
from hardenkit.ratelimit.storage import StorageGuard


class Clock:
    def __init__(self, now: float = 1_000_020.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def engine(strategy: str, clock: Clock) -> LocalEngine:
    return LocalEngine(strategy, clock=clock)


def window(text: str, name: str = "default") -> Window:
    return Window(parse(text), name)


def hit(
    e: LocalEngine, w: Window, cost: int = 1, client: str = "c", peek: bool = False
) -> tuple[bool, int, float]:
    decision = e.decide((w,), "ns", client, cost, peek)
    stat = decision.stats[0]
    return decision.allowed, stat.remaining, stat.reset_in


# -- fixed window ---------------------------------------------------------------------------------


def test_fixed_window_counts_then_refuses_until_its_end() -> None:
    clock = Clock()
    e, w = engine("fixed-window", clock), window("3/minute")
    assert [hit(e, w)[:2] for _ in range(3)] == [(True, 2), (True, 1), (True, 0)]
    allowed, remaining, reset = hit(e, w)
    assert (allowed, remaining, reset) == (False, 0, 60.0)
    clock.now += 59.9
    assert hit(e, w)[0] is False
    clock.now += 0.1
    assert hit(e, w)[:2] == (True, 2)


def test_peek_and_zero_cost_do_not_count() -> None:
    clock = Clock()
    e, w = engine("fixed-window", clock), window("2/minute")
    assert hit(e, w, peek=True)[:2] == (True, 2)
    assert hit(e, w, cost=0)[:2] == (True, 2)
    assert hit(e, w)[:2] == (True, 1)


def test_cost_larger_than_the_limit_is_always_refused() -> None:
    for strategy in ("fixed-window", "sliding-window", "moving-window"):
        e, w = engine(strategy, Clock()), window("3/minute")
        allowed, remaining, reset = hit(e, w, cost=4)
        assert not allowed and remaining == 3 and reset > 0


def test_several_windows_count_together_or_not_at_all() -> None:
    clock = Clock()
    e = engine("fixed-window", clock)
    second, minute = window("1/second", "s"), window("2/minute", "m")
    assert e.decide((second, minute), "ns", "c", 1, False).allowed
    refused = e.decide((second, minute), "ns", "c", 1, False)
    assert not refused.allowed
    assert [s.violated for s in refused.stats] == [True, False]
    assert refused.stats[1].remaining == 1  # the refused request did not use the minute
    clock.now += 1
    assert e.decide((second, minute), "ns", "c", 1, False).allowed
    clock.now += 1
    refused = e.decide((second, minute), "ns", "c", 1, False)
    assert [s.violated for s in refused.stats] == [False, True]


def test_namespaces_and_clients_are_separate_buckets() -> None:
    e, w = engine("moving-window", Clock()), window("1/minute")
    assert e.decide((w,), "a", "c", 1, False).allowed
    assert e.decide((w,), "b", "c", 1, False).allowed
    assert e.decide((w,), "a", "d", 1, False).allowed
    assert not e.decide((w,), "a", "c", 1, False).allowed


# -- sliding window -------------------------------------------------------------------------------


def test_sliding_window_weights_the_previous_window() -> None:
    clock = Clock(1_000_020.0)  # 20 s into a clock-aligned minute
    e, w = engine("sliding-window", clock), window("10/minute")
    for _ in range(10):
        assert hit(e, w)[0]
    assert not hit(e, w)[0]
    clock.now = 1_000_080.0 + 30  # half-way through the next minute: 10 * 0.5 = 5 used
    assert hit(e, w)[:2] == (True, 4)
    clock.now = 1_000_140.0 + 1  # two minutes on: nothing left of the first one
    assert hit(e, w)[:2] == (True, 9)


@settings(max_examples=150, deadline=None)
@given(
    limit=st.integers(1, 20),
    seconds=st.sampled_from([1, 10, 60]),
    start=st.floats(0, 59.9),
    previous_hits=st.integers(0, 25),
    current_gap=st.floats(0, 0.95),
    cost=st.integers(1, 4),
)
def test_retry_after_of_a_refusal_is_honest(
    limit: int, seconds: int, start: float, previous_hits: int, current_gap: float, cost: int
) -> None:
    for strategy in ("sliding-window", "fixed-window", "moving-window"):
        clock = Clock(1_200_000.0 + start)
        e, w = engine(strategy, clock), window(f"{limit}/{seconds} seconds")
        for _ in range(previous_hits):
            hit(e, w)
        clock.now += current_gap * seconds
        while True:
            allowed, _, wait = hit(e, w, cost=cost)
            if not allowed:
                break
        if cost > limit:
            continue
        # The wait is not needlessly long (a second earlier is still refused) ...
        if wait > 1.0:
            e.clock = Clock(clock.now + wait - 1.0)
            assert not hit(e, w, cost=cost, peek=True)[0], (strategy, wait)
        # ... and retrying after it succeeds. (Checked in this order: the engine rolls
        # its windows forward and the clock must not go back.)
        e.clock = Clock(clock.now + wait)
        assert hit(e, w, cost=cost, peek=True)[0], (strategy, wait)


def test_sliding_wait_edges() -> None:
    assert sliding_wait(0, 0, 10, 60, 1, 2) == 70  # cost above the limit
    assert sliding_wait(0, 0, 10, 60, 5, 1) == 0.0
    assert sliding_wait(20, 0, 30, 60, 5, 1) == pytest.approx(15.001)
    assert sliding_wait(5, 0, 30, 60, 5, 1) == pytest.approx(0.001)
    assert sliding_wait(0, 5, 30, 60, 5, 1) == pytest.approx(30 + 60 - 60 + 0.001)


# -- moving window ---------------------------------------------------------------------------------


def test_moving_window_frees_each_entry_one_window_after_it() -> None:
    clock = Clock()
    e, w = engine("moving-window", clock), window("2/minute")
    assert hit(e, w)[0]
    clock.now += 20
    assert hit(e, w)[0]
    allowed, remaining, wait = hit(e, w)
    assert (allowed, remaining, wait) == (False, 0, 40.0)
    clock.now += 40
    assert hit(e, w)[:2] == (True, 0)
    assert hit(e, w, cost=3)[0] is False


# -- memory housekeeping ----------------------------------------------------------------------------


def test_idle_keys_are_dropped_after_two_windows_without_a_sweep() -> None:
    clock = Clock()
    e, w = engine("fixed-window", clock), window("5/second")
    for n in range(1000):
        hit(e, w, client=f"client-{n}")
    gens = e._gens[1]
    assert len(gens.current) == 1000
    clock.now += 2.5
    hit(e, w, client="fresh")
    assert len(gens.current) == 1 and len(gens.old) == 1000
    clock.now += 2.5
    hit(e, w, client="fresh")
    assert len(gens.old) == 0 and len(gens.current) == 1  # the thousand idle keys are gone
    clock.now += 10
    hit(e, w, client="other")
    assert set(gens.current) | set(gens.old) == {(w.tag, "ns", "other")}


def test_a_key_used_again_moves_back_to_the_current_generation() -> None:
    clock = Clock()
    e, w = engine("fixed-window", clock), window("5/minute")
    hit(e, w)
    clock.now += 125  # one rotation (period 120 s); the fixed window itself expired too
    assert hit(e, w)[:2] == (True, 4)
    assert (w.tag, "ns", "c") in e._gens[60].current


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError):
        LocalEngine("token-bucket")


# -- outage guard ------------------------------------------------------------------------------------


def test_guard_backs_off_logs_once_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(100.0)
    guard = StorageGuard(storage="redis://h/0", mode="memory", clock=clock)
    caplog.set_level(logging.INFO, "hardenkit.ratelimit")
    assert guard.should_try()
    guard.failed(ConnectionError("refused"), probe=False)
    guard.failed(ConnectionError("refused"), probe=False)  # an in-flight call: nothing new
    assert guard.state()["healthy"] is False
    assert not guard.should_try()
    clock.now += 0.5
    assert guard.should_try()  # the probe
    assert not guard.should_try()  # only one probe at a time
    guard.failed(ConnectionError("refused\nagain"), probe=True)
    assert guard.backoff == 1.0
    clock.now += 0.9
    assert not guard.should_try()
    clock.now += 0.2
    assert guard.should_try()
    for _ in range(10):
        guard.failed(ConnectionError("x"), probe=True)
    assert guard.backoff == 5.0  # capped: back within 5 s of the storage returning
    guard.succeeded()
    guard.succeeded()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "unreachable (ConnectionError: refused)" in messages[0] and "'memory'" in messages[0]
    assert "reachable again" in messages[1]
    assert guard.state() == {
        "healthy": True,
        "mode": "primary",
        "on_storage_error": "memory",
        "since": None,
        "storage": "redis://h/0",
    }
    assert guard.retry_in() == 0.0


def test_long_error_messages_are_cut_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    guard = StorageGuard(storage="s", mode="allow")
    guard.failed(RuntimeError("x" * 1000), probe=False)
    assert "x" * 197 + "..." in caplog.text and "x" * 198 not in caplog.text


@pytest.mark.parametrize(
    ("uri", "masked"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://user:pw@h/1", "rediss://user:***@h/1"),
        ("redis://h:6379", "redis://h:6379"),
        ("memory://", "memory://"),
        ("redis://[::1", "<unparseable storage uri>"),
    ],
)
def test_storage_uri_passwords_are_masked(uri: str, masked: str) -> None:
    assert mask_uri(uri) == masked


# -- addresses ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", "192.0.2.1"),
        (" 192.0.2.1:8080 ", "192.0.2.1"),
        ('"[2001:db8::1]:4711"', "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:192.0.2.9", "192.0.2.9"),
        ("[2001:db8::1", None),
        ("unknown", None),
        ("_hidden", None),
        ("", None),
        ("1" * 100, None),
    ],
)
def test_parse_ip(text: str, expected: str | None) -> None:
    parsed = parse_ip(text)
    assert (str(parsed) if parsed is not None else None) == expected


def test_parse_networks_accepts_strings_and_lists() -> None:
    assert parse_networks(None, option="x") == ()
    assert parse_networks("10.0.0.0/8, 192.168.1.7", option="x") == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.7/32"),
    )


def test_safe_key_keeps_plain_keys_and_digests_the_rest() -> None:
    assert safe_key("192.0.2.1") == "192.0.2.1"
    assert safe_key("2001:db8::/64") != "2001:db8::/64"  # '/' is not kept
    digest = safe_key("key with spaces")
    assert digest.startswith("sha256-") and len(digest) == 47
    assert safe_key("a" * 129) != safe_key("a" * 130)


def client_scope(peer: str | None, headers: list[tuple[bytes, bytes]]) -> dict[str, object]:
    return {"type": "http", "client": (peer, 1) if peer else None, "headers": headers}


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        ("10.0.0.1", b"198.51.100.1", "198.51.100.1"),
        ("10.0.0.1", b"1.1.1.1, 198.51.100.1, 10.0.0.2", "198.51.100.1"),
        ("10.0.0.1", b"", "10.0.0.1"),
        ("10.0.0.1", b"10.0.0.3, 10.0.0.2", "10.0.0.3"),
        ("198.51.100.9", b"1.1.1.1", "198.51.100.9"),
        (None, b"1.1.1.1", None),
    ],
)
def test_client_address_walks_trusted_hops_from_the_right(
    peer: str | None, xff: bytes, expected: str | None
) -> None:
    finder = ClientAddress(
        trusted_proxies=parse_networks(["10.0.0.0/8"], option="t"),
        proxy_header="x-forwarded-for",
        ipv6_prefix=64,
    )
    address = finder.address(client_scope(peer, [(b"x-forwarded-for", xff)]))
    assert (str(address) if address is not None else None) == expected


def test_client_key_forms() -> None:
    finder = ClientAddress(trusted_proxies=(), proxy_header="x-forwarded-for", ipv6_prefix=64)
    assert finder.key(client_scope("192.0.2.1", [])) == "192.0.2.1"
    assert finder.key(client_scope("2001:db8:1:2:3:4:5:6", [])) == "2001:db8:1:2::/64"
    assert finder.key(client_scope("not an address:at all", [])).startswith("sha256-")
    assert finder.key(client_scope(None, [])) == "unknown"
    trusting = ClientAddress(
        trusted_proxies=parse_networks(["10.0.0.0/8"], option="t"), proxy_header="forwarded", ipv6_prefix=128
    )
    assert trusting.key(client_scope("10.0.0.1", [(b"forwarded", b'for="[2001:db8::5]"')])) == "2001:db8::5"
    assert trusting.key(client_scope("odd-name", [])) == "odd-name"
    assert trusting.key(client_scope(None, [])) == "unknown"


def test_reprs_name_the_limit() -> None:
    w = window("3/minute", "ai")
    decision = LocalEngine("fixed-window", clock=Clock()).decide((w,), "ns", "c", 1, False)
    assert repr(w) == "Window('ai', 3/60s)"
    assert repr(decision.stats[0]) == "Stat('ai', remaining=2, reset_in=60.000)"
