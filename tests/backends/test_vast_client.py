"""The Vast REST client, the offer search and the instance view: the pure parts, and the client
against the fake API (which needs no sshd for any of this: no instance here reaches ``running``).
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

import fake_vast as fakes
import pytest
from fake_vast import FakeVast

from voltx._logging import redact_text
from voltx.errors import BackendError
from voltx.spec import Resources
from voltx_backends.vast import (
    Condition,
    Instance,
    OfferFilters,
    OfferQuery,
    OfferUnavailableError,
    RetryPolicy,
    VastAPIError,
    VastClient,
    load_api_key,
)
from voltx_backends.vast.client import api_url, encode_query, error_details

fake_vast = fakes.fake_vast


@pytest.fixture
def client(fake_vast: FakeVast) -> VastClient:
    """A client of the fake that never really sleeps (its sleeps are recorded)."""
    made = VastClient(
        fake_vast.api_key,
        url=fake_vast.url,
        min_interval_s=0.0,
        retry=RetryPolicy(attempts=5, first_s=0.5),
        sleep=SLEEPS.append,
    )
    SLEEPS.clear()
    return made


SLEEPS: list[float] = []


# -- the offer search ------------------------------------------------------------------------


def test_query_from_resources_and_filters_sends_real_numbers() -> None:
    query = OfferQuery.build(
        Resources(gpus=2, gpu_memory_gb=40, cpu_cores=8, ram_gb=32, disk_gb=100),
        OfferFilters(
            gpu_name=["RTX_4090", "A100 SXM4"],
            min_cuda=12.1,
            max_dph=2.5,
            min_reliability=0.97,
            min_inet_down_mbps=200,
            min_ram_gb=64,
            geolocation="US",
        ),
        disk_gb=32,
        exclude_machines=[7, 3],
        limit=5,
    )
    assert query.body() == {
        "verified": {"eq": True},
        "external": {"eq": False},
        "rentable": {"eq": True},
        "rented": {"eq": False},
        "num_gpus": {"eq": 2},
        "gpu_name": {"in": ["RTX 4090", "A100 SXM4"]},
        "gpu_ram": {"gte": 40000},
        "cpu_cores_effective": {"gte": 8},
        "cpu_ram": {"gte": 64000},  # the user's floor is higher than the phase's
        "disk_space": {"gte": 100},
        "cuda_max_good": {"gte": 12.1},
        "dph_total": {"lte": 2.5},
        "reliability": {"gte": 0.97},
        "inet_down": {"gte": 200},
        "geolocation": {"eq": "US"},
        "machine_id": {"notin": [3, 7]},
        "order": [["dph_total", "asc"]],
        "type": "on-demand",
        "limit": 5,
        "allocated_storage": 100,
    }


def test_cpu_phase_still_rents_one_gpu_and_interruptible_bids() -> None:
    body = OfferQuery.build(Resources(), OfferFilters(interruptible=True, verified=None)).body()
    assert body["num_gpus"] == {"eq": 1}
    assert body["type"] == "bid"
    assert "verified" not in body


def test_num_gpus_below_the_phase_need_is_an_error() -> None:
    with pytest.raises(BackendError, match="needs 4 GPUs"):
        OfferQuery.build(Resources(gpus=4), OfferFilters(num_gpus=2))


def test_fake_coerces_the_official_clients_string_numbers(client: VastClient) -> None:
    # The exact body the official parser builds (docs/vast.md): numbers as strings.
    official = {
        "verified": {"eq": True},
        "external": {"eq": False},
        "rentable": {"eq": True},
        "rented": {"eq": False},
        "gpu_name": {"eq": "RTX 4090"},
        "num_gpus": {"eq": "1"},
        "reliability": {"gt": "0.96"},
        "dph_total": {"lte": "1.0"},
        "cuda_max_good": {"gte": "12.0"},
        "inet_up": {"gte": "100"},
        "disk_space": {"gte": "50"},
        "order": [["dph_total", "asc"]],
        "type": "on-demand",
        "limit": 5,
        "allocated_storage": 5.0,
    }
    offers = client.request("POST", "/bundles/", body=official)["offers"]
    assert [(o["id"], o["dph_total"]) for o in offers] == [(5000, 0.40), (5001, 0.45)]


def test_search_returns_typed_offers_cheapest_first(client: VastClient) -> None:
    offers = client.search_offers(OfferQuery.build(Resources(), OfferFilters(min_reliability=0.5)))
    assert [o.id for o in offers] == [5000, 5001, 5002]  # the unverified 1080 is left out
    assert offers[0].machine_id == 101 and offers[0].gpu_name == "RTX 4090"
    assert offers[0].min_bid == 0.1


# -- the instance view -------------------------------------------------------------------------


def test_endpoints_direct_first_then_proxy() -> None:
    data = {
        "id": 1,
        "actual_status": "running",
        "public_ipaddr": "203.0.113.5 ",
        "ports": {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "41234"}]},
        "ssh_host": "ssh5.vast.ai",
        "ssh_port": 22345,
    }
    assert Instance.from_api(data).endpoints() == [("203.0.113.5", 41234), ("ssh5.vast.ai", 22345)]
    assert Instance.from_api({**data, "ports": None}).endpoints() == [("ssh5.vast.ai", 22345)]
    assert Instance.from_api({"id": 2, "actual_status": None}).endpoints() == []


@pytest.mark.parametrize(
    ("status", "condition"),
    [
        (None, Condition.PENDING),
        ("created", Condition.PENDING),
        ("loading", Condition.PENDING),
        ("rebooting", Condition.PENDING),
        ("something_new", Condition.PENDING),
        ("running", Condition.RUNNING),
        ("exited", Condition.DEAD),
        ("stopped", Condition.DEAD),
        ("frozen", Condition.DEAD),
        ("unknown", Condition.DEAD),
        ("offline", Condition.DEAD),
    ],
)
def test_status_mapping(status: str | None, condition: Condition) -> None:
    assert Instance.from_api({"id": 1, "actual_status": status}).condition is condition


def test_cost_so_far_is_price_times_hours() -> None:
    instance = Instance.from_api({"id": 1, "dph_total": 0.5, "start_date": 1000.0})
    assert instance.cost_so_far(now=1000.0 + 7200) == pytest.approx(1.0)
    assert Instance.from_api({"id": 2}).cost_so_far() == 0.0


# -- requests, errors and retries ------------------------------------------------------------


def test_url_and_query_encoding_follow_the_official_client() -> None:
    assert api_url("/bundles") == "/api/v0/bundles/"
    assert api_url("/api/v1/instances/") == "/api/v1/instances/"
    assert encode_query({"limit": 25, "owner": "me", "select_filters": {"a": {"eq": 1}}}) == (
        "limit=25&owner=me&select_filters=%7B%22a%22%3A%7B%22eq%22%3A1%7D%7D"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"success":false,"error":"no_such_ask","msg":"gone"}', ("no_such_ask", "gone")),
        (b'{"message":"bad thing"}', (None, "bad thing")),
        (b'{"error":"auth_error"}', ("auth_error", "auth_error")),
        (b"API requests too frequent", (None, "API requests too frequent")),
        (b"[1, 2]", (None, "[1, 2]")),
    ],
)
def test_error_bodies_json_or_text(body: bytes, expected: tuple[str | None, str]) -> None:
    assert error_details(body) == expected


def test_backoff_grows_is_capped_and_jittered() -> None:
    policy = RetryPolicy(first_s=0.5, factor=2.0, max_s=30.0)
    rng = random.Random(1)
    for retry in range(10):
        base = min(30.0, 0.5 * 2**retry)
        delays = [policy.delay(retry, rng) for _ in range(50)]
        assert all(base / 2 <= d <= base for d in delays)
        assert len(set(delays)) > 1


def test_429_burst_is_retried_with_growing_waits(fake_vast: FakeVast, client: VastClient) -> None:
    fake_vast.rate_limit_burst(3, "/api/v1/instances/")
    assert client.list_instances() == []
    assert len(SLEEPS) == 3
    assert 0.25 <= SLEEPS[0] <= 0.5 and 0.5 <= SLEEPS[1] <= 1.0 and 1.0 <= SLEEPS[2] <= 2.0


def test_429_that_never_ends_is_an_error_with_the_servers_words(
    fake_vast: FakeVast, client: VastClient
) -> None:
    fake_vast.rate_limit_burst(10, "/api/v0/instances/", json_body=True)
    with pytest.raises(VastAPIError, match="too frequent") as caught:
        client.show_instance(1)
    assert caught.value.status == 429 and caught.value.code == "rate_limit_exceeded"
    assert len(SLEEPS) == 4  # five attempts


def test_rent_is_retried_on_429_but_never_on_a_gateway_error(
    fake_vast: FakeVast, client: VastClient
) -> None:
    body = {"image": "x", "runtype": "ssh_direc ssh_proxy", "label": "voltx-t", "env": {}}
    fake_vast.rate_limit_burst(1, "/api/v0/asks/")
    first = client.create_instance(5000, body)
    fake_vast.server_errors(1, 502, "/api/v0/asks/")
    with pytest.raises(VastAPIError) as caught:
        client.create_instance(5001, body)
    assert caught.value.status == 502 and caught.value.may_have_happened
    rents = [r.status for r in fake_vast.requests if r.path == "/api/v0/asks/5001/"]
    assert rents == [502]
    with pytest.raises(OfferUnavailableError):
        client.create_instance(5000, body)  # rented already
    assert client.destroy_instance(first) is True
    assert client.destroy_instance(first) is False  # gone: fine
    assert client.show_instance(first) is None


def test_idempotent_requests_ride_out_5xx(fake_vast: FakeVast, client: VastClient) -> None:
    fake_vast.server_errors(2, 503, "/api/v1/instances/")
    fake_vast.server_errors(1, 504, "/api/v0/bundles/")
    assert client.list_instances() == []
    assert client.search_offers(OfferQuery.build(Resources()))


def test_unreachable_api_is_retried_then_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps: list[float] = []
    client = VastClient(
        "some-key-123456",
        url=f"http://127.0.0.1:{port}",
        retry=RetryPolicy(3),
        min_interval_s=0.0,
        sleep=sleeps.append,
    )
    with pytest.raises(VastAPIError, match="no answer") as caught:
        client.list_instances()
    assert caught.value.status is None and len(sleeps) == 2


def test_pages_of_the_instance_list_are_all_read(fake_vast: FakeVast, client: VastClient) -> None:
    ids = [fake_vast.add_instance(f"lbl-{n}", status="loading") for n in range(30)]
    assert [i.id for i in client.list_instances()] == ids
    pages = [r for r in fake_vast.requests if r.path == "/api/v1/instances/"]
    assert len(pages) == 2 and "after_token" in pages[1].query


def test_fake_rejects_filters_on_computed_columns(client: VastClient) -> None:
    with pytest.raises(VastAPIError, match="HTTP 400"):
        client.request(
            "GET", "/api/v1/instances/", query={"select_filters": {"dph_total": {"lt": 1}}}
        )


# -- the key ---------------------------------------------------------------------------------


def test_key_only_in_the_header_and_never_in_errors(fake_vast: FakeVast) -> None:
    wrong = "wrong-key-Zk81hQ02"
    client = VastClient(wrong, url=fake_vast.url, min_interval_s=0, retry=RetryPolicy(1))
    with pytest.raises(VastAPIError) as caught:
        client.list_instances()
    assert caught.value.status == 401 and caught.value.code == "auth_error"
    assert wrong not in str(caught.value) and wrong not in repr(client)
    assert fake_vast.key_in_query == 0
    assert all("api_key" not in r.query for r in fake_vast.requests)
    assert redact_text(f"token {wrong}") == "token ***"


def test_key_sources_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "vast_api_key"
    key_file.write_text("from-file-key-1234\n")
    monkeypatch.setenv("VAST_API_KEY", "from-env-key-1234")
    assert load_api_key("explicit-key-1234", key_file) == "explicit-key-1234"
    assert load_api_key(None, key_file) == "from-env-key-1234"
    monkeypatch.delenv("VAST_API_KEY")
    assert load_api_key(None, key_file) == "from-file-key-1234"
    assert redact_text("from-file-key-1234") == "***"
    with pytest.raises(BackendError, match=r"no Vast\.ai API key: set VAST_API_KEY"):
        load_api_key(None, tmp_path / "missing")


def test_settings_reject_unknown_keys_with_a_hint(tmp_path: Path) -> None:
    from voltx_backends.vast import VastBackend

    with pytest.raises(BackendError, match="'max_dhp'; did you mean max_dph"):
        VastBackend(work_dir=tmp_path, api_key="k" * 12, max_dhp=1.0)


# -- plans: prices and preflight -------------------------------------------------------------


def test_quote_is_the_cheapest_offer_and_asks_once(fake_vast: FakeVast, tmp_path: Path) -> None:
    from voltx_backends.vast import VastBackend

    backend = VastBackend(work_dir=tmp_path, request_spacing_s=0.0, min_reliability=0.5)
    quote = backend.quote(Resources(gpus=1))
    assert quote.host == "vast:RTX 4090" and quote.separate_host
    assert quote.dollars_per_hour == 0.40 and quote.dollars_per_hour_high == 1.20
    assert quote.bandwidth_mb_s == 500 / 8
    # A 4090 trains at about a sixth of the reference H100's pace: GPU phases take longer there.
    assert quote.relative_speed == pytest.approx(165 / 989)
    assert backend.quote(Resources(gpus=1)) is quote
    assert len([r for r in fake_vast.requests if r.path == "/api/v0/bundles/"]) == 1
    backend.close()


def test_preflight_names_phases_without_offers_and_rents_nothing(
    fake_vast: FakeVast, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voltx_backends.vast import VastBackend

    backend = VastBackend(work_dir=tmp_path, request_spacing_s=0.0)
    problems = backend.preflight(
        {"1.1": Resources(gpus=1), "1.2": Resources(gpus=1), "3.1": Resources(gpus=8)}
    )
    assert len(problems) == 1 and problems[0].startswith("phase 3.1: no Vast.ai offer matches")
    assert fake_vast.created() == []
    monkeypatch.setenv("VAST_API_KEY", "revoked-key-000000")
    revoked = VastBackend(work_dir=tmp_path, request_spacing_s=0.0, request_attempts=1)
    (problem,) = revoked.preflight({"1.1": Resources(gpus=1)})
    assert "HTTP 401" in problem and "revoked-key-000000" not in problem
    monkeypatch.delenv("VAST_API_KEY")
    keyless = VastBackend(work_dir=tmp_path, api_key_file=str(tmp_path / "none"))
    assert keyless.preflight({"1.1": Resources(gpus=1)}) == [
        f"Vast.ai: no Vast.ai API key: set VAST_API_KEY, or put the key in {tmp_path / 'none'} "
        "(`vastai set api-key` writes it there), or name a file with api_key_file"
    ]
    assert keyless.quote(Resources()).dollars_per_hour == 0.0
    for made in (backend, revoked, keyless):
        made.close()


def test_relative_speed_of_gpu_models() -> None:
    from voltx_backends.vast.gpus import relative_speed

    assert relative_speed("H100 SXM") == 1.0
    assert relative_speed("H100_PCIE") == pytest.approx(756 / 989)
    assert relative_speed("A100 SXM4 80GB") == pytest.approx(312 / 989)  # a suffix Vast adds
    assert relative_speed("Some Future GPU") == 1.0
