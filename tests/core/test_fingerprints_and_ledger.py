"""voltx.fingerprint (skip or rerun, and why) and voltx.ledger (a run's events, folded)."""

from __future__ import annotations

import re

import pytest

from voltx.fingerprint import committed_outputs, fingerprint, record_success, why_run
from voltx.ledger import (
    Event,
    Ledger,
    PhaseState,
    last_run_for,
    latest_run_id,
    new_run_id,
    remember_run,
    target_key,
)

CONFIG = {"batch_size": 16, "optimizer": {"lr": 1e-4, "betas": [0.9, 0.99]}, "max_tokens": 512}
INPUTS = {"corpus": "a" * 64, "tokenizer": "b" * 64}


def commit(store, tmp_path, name: str, content: bytes) -> str:
    source = tmp_path / f"{name}.bin"
    source.write_bytes(content)
    return str(store.commit(name, source, {"phase": "2.1"}).digest)


def succeed(store, config=CONFIG, inputs=INPUTS, outputs=None, version="1") -> str:
    fp = fingerprint("2.1", version, config, inputs)
    record_success(
        store,
        phase_id="2.1",
        fp=fp,
        version=version,
        config=config,
        inputs=inputs,
        outputs=outputs or {},
        run_id="run-1",
    )
    return fp


# -- fingerprint -----------------------------------------------------------------------------


def test_fingerprint_is_a_stable_hex_digest():
    fp = fingerprint("2.1", "1", CONFIG, INPUTS)
    assert re.fullmatch(r"[0-9a-f]{64}", fp)
    assert fp == fingerprint("2.1", "1", CONFIG, INPUTS)


def test_fingerprint_ignores_key_order():
    reordered_config = {
        "max_tokens": 512,
        "optimizer": {"betas": [0.9, 0.99], "lr": 1e-4},
        "batch_size": 16,
    }
    reordered_inputs = dict(reversed(list(INPUTS.items())))
    assert fingerprint("2.1", "1", reordered_config, reordered_inputs) == fingerprint(
        "2.1", "1", CONFIG, INPUTS
    )


@pytest.mark.parametrize(
    "change",
    [
        {"phase_id": "2.2"},
        {"version": "2"},
        {"config": {**CONFIG, "batch_size": 32}},
        {"config": {**CONFIG, "optimizer": {"lr": 1e-3, "betas": [0.9, 0.99]}}},
        {"config": {**CONFIG, "optimizer": {"lr": 1e-4, "betas": [0.99, 0.9]}}},
        {"config": {**CONFIG, "extra": None}},
        {"inputs": {**INPUTS, "corpus": "c" * 64}},
        {"inputs": {"corpus": "a" * 64}},
    ],
)
def test_fingerprint_changes_with_what_the_phase_depends_on(change):
    arguments = {"phase_id": "2.1", "version": "1", "config": CONFIG, "inputs": INPUTS}
    assert fingerprint(**{**arguments, **change}) != fingerprint(**arguments)


# -- committed outputs and why a phase runs --------------------------------------------------


def test_committed_outputs_when_every_output_is_there(store, tmp_path):
    model = commit(store, tmp_path, "model", b"weights")
    fp = succeed(store, outputs={"model": model})
    assert committed_outputs(store, fp) == {"model": model}
    assert committed_outputs(store, "0" * 64) is None


def test_committed_outputs_none_when_an_output_is_gone(store_case, tmp_path):
    store = store_case.store
    model = commit(store, tmp_path, "model", b"weights")
    other = commit(store, tmp_path, "other", b"other")
    fp = succeed(store, outputs={"model": model, "other": other})
    store_case.delete_raw(f"manifests/{other}.json")
    assert committed_outputs(store, fp) is None


def test_why_run_never_run(store):
    assert why_run(store, "2.1", "1", CONFIG, INPUTS) == "never run"


def test_why_run_names_the_changed_config_key(store):
    succeed(store)
    changed = {**CONFIG, "optimizer": {"lr": 3e-4, "betas": [0.9, 0.99]}}
    assert why_run(store, "2.1", "1", changed, INPUTS) == "config changed: optimizer.lr"
    assert (
        why_run(store, "2.1", "1", {**CONFIG, "max_tokens": 1024}, INPUTS)
        == "config changed: max_tokens"
    )
    removed = {k: v for k, v in CONFIG.items() if k != "batch_size"}
    assert why_run(store, "2.1", "1", removed, INPUTS) == "config changed: batch_size"


def test_why_run_shortens_a_long_list_of_changes(store):
    succeed(store, config={k: 0 for k in "abcdef"})
    reason = why_run(store, "2.1", "1", {k: 1 for k in "abcdef"}, INPUTS)
    assert reason == "config changed: a, b, c, d..."


def test_why_run_version_before_config(store):
    succeed(store)
    assert why_run(store, "2.1", "2", {**CONFIG, "batch_size": 1}, INPUTS) == "code version 1 -> 2"


def test_why_run_names_the_changed_input(store):
    succeed(store)
    moved = {**INPUTS, "tokenizer": "f" * 64, "extra": "e" * 64}
    assert why_run(store, "2.1", "1", CONFIG, moved) == "input changed: extra, tokenizer"


def test_why_run_when_only_outputs_are_missing(store):
    succeed(store)
    assert why_run(store, "2.1", "1", CONFIG, INPUTS) == "outputs missing from the store"


def test_secret_config_values_are_stored_redacted(store):
    fp = succeed(store, config={**CONFIG, "hf_token": "hf_real_token_value"})
    record = store.read_record(f"fingerprints/{fp}.json")
    assert record is not None
    assert record["config"]["hf_token"] == "***"
    assert record["config"]["max_tokens"] == 512
    # A redacted value is not evidence of a change.
    new_token = {**CONFIG, "hf_token": "hf_other_token_value"}
    assert why_run(store, "2.1", "1", new_token, INPUTS) == "outputs missing from the store"


# -- ledger ----------------------------------------------------------------------------------


def test_events_round_trip_in_order(store):
    ledger = Ledger(store, "run-a")
    written = [
        ledger.record("run_started", targets=["2.1"]),
        ledger.record("queued", "2.1"),
        ledger.record("started", "2.1", attempt=1, backend="local", job={"pid": 42}),
        ledger.record("finished", "2.1", outputs={"model": "d" * 64}),
    ]
    written += [ledger.record("progress", "2.1", step=i) for i in range(30)]

    events = Ledger(store, "run-a").events()  # another process reading the same run

    assert events == written
    assert events[0] == Event(kind="run_started", time=events[0].time, data={"targets": ["2.1"]})
    assert events[2].data == {"attempt": 1, "backend": "local", "job": {"pid": 42}}
    assert [e.data["step"] for e in events[4:]] == list(range(30))


def test_events_of_other_runs_stay_apart(store):
    Ledger(store, "run-a").record("queued", "1")
    Ledger(store, "run-b").record("queued", "2")
    assert [e.phase_id for e in Ledger(store, "run-a").events()] == ["1"]
    assert Ledger(store, "run-c").events() == []


def test_two_writers_on_one_run_lose_nothing(store):
    first, second = Ledger(store, "run-a"), Ledger(store, "run-a")
    for i in range(5):
        first.record("progress", "a", step=i)
        second.record("progress", "b", step=i)
    events = Ledger(store, "run-a").events()
    assert len(events) == 10
    assert [e.data["step"] for e in events if e.phase_id == "a"] == list(range(5))


def test_event_data_is_redacted(store):
    ledger = Ledger(store, "run-a")
    ledger.record("started", "2.1", job={"api_key": "key-in-a-job"}, attempt=1)
    assert ledger.events()[0].data == {"job": {"api_key": "***"}, "attempt": 1}


def test_phase_states_fold_the_events(store):
    ledger = Ledger(store, "run-a")
    ledger.record("run_started", targets=["2.1", "3"])
    ledger.record("queued", "2.1")
    ledger.record("queued", "3")
    ledger.record("started", "2.1", attempt=1, backend="local", job={"pid": 1})
    ledger.record("failed", "2.1", error="CUDA out of memory")
    ledger.record("started", "2.1", attempt=2, backend="ssh", job={"pid": 2})
    ledger.record("succeeded", "2.1", outputs={"model": "d" * 64})
    ledger.record("blocked", "3", reason="2.2 failed")
    ledger.record("skipped", "4", reason="up to date", outputs={"x": "e" * 64})

    states = ledger.phase_states()
    events = ledger.events()

    assert set(states) == {"2.1", "3", "4"}
    assert states["2.1"] == PhaseState(
        phase_id="2.1",
        state="succeeded",
        attempts=2,
        started_at=events[5].time,
        finished_at=events[6].time,
        reason="",
        outputs={"model": "d" * 64},
        job={"pid": 2},
        backend="ssh",
    )
    assert states["3"].state == "blocked"
    assert states["3"].reason == "2.2 failed"
    assert states["3"].attempts == 0
    assert states["4"].state == "skipped"
    assert states["4"].outputs == {"x": "e" * 64}


def test_phase_state_while_running_and_after_a_failure(store):
    ledger = Ledger(store, "run-a")
    ledger.record("queued", "1")
    assert ledger.phase_states()["1"].state == "queued"
    ledger.record("started", "1")
    running = ledger.phase_states()["1"]
    assert (running.state, running.attempts) == ("running", 1)
    ledger.record("failed", "1", error="exit code 1")
    failed = ledger.phase_states()["1"]
    assert (failed.state, failed.reason, failed.attempts) == ("failed", "exit code 1", 1)


def test_run_meta_and_indexes(store):
    ledger = Ledger(store, "run-a")
    assert ledger.meta() is None
    ledger.write_meta({"targets": ["2.1"], "profile": "tiny"})
    assert ledger.meta() == {"targets": ["2.1"], "profile": "tiny"}

    key = target_key(["3", "2.1"], "tiny", "local")
    assert last_run_for(store, key) is None
    remember_run(store, key, "run-a")
    assert last_run_for(store, key) == "run-a"
    assert latest_run_id(store) is None
    store.write_record("runs/latest.json", {"run_id": "run-a"})
    assert latest_run_id(store) == "run-a"


def test_target_key_is_order_free_and_distinguishes_profile_and_backend():
    key = target_key(["2.1", "3"], "tiny", "local")
    assert key == target_key(["3", "2.1"], "tiny", "local")
    assert len(key) == 16
    assert key != target_key(["2.1", "3"], "full", "local")
    assert key != target_key(["2.1", "3"], "tiny", "ssh")
    assert key != target_key(["2.1"], "tiny", "local")


def test_new_run_ids_sort_by_time_and_are_unique():
    ids = {new_run_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", i) for i in ids)
