"""Phase 1.2 trained on the context it reads at inference (the slot vectors), against the
original's per-token context: decoding from slots, the slot-trained decoder does better."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

torch = pytest.importorskip("torch")

from test_translator import (  # noqa: E402
    DECODER_SPEC,
    ENCODER_SPEC,
    DirectRun,
    data_inputs,
    epoch_rows,
    run_directly,
    write_corpus,
    write_problems,
)

from voltx_phases.translator.config import DECODER_PROFILES, ENCODER_PROFILES  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def decoder_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    threads = torch.get_num_threads()
    folder = tmp_path_factory.mktemp("context-data")
    write_corpus(folder / "stack_python.jsonl")
    write_problems(folder / "code_training_combined.jsonl")
    encoder = run_directly(
        ENCODER_SPEC, ENCODER_PROFILES["tiny"], data_inputs(folder), folder / "encoder"
    )
    torch.set_num_threads(threads)
    return {**data_inputs(folder), **encoder.outputs}


def train(inputs: dict[str, Path], folder: Path, context: str) -> DirectRun:
    threads = torch.get_num_threads()
    config = attrs.evolve(DECODER_PROFILES["tiny"], context=context)
    try:
        return run_directly(DECODER_SPEC, config, inputs, folder)
    finally:
        torch.set_num_threads(threads)


def test_slot_trained_decoder_beats_the_token_trained_one_from_slots(
    decoder_inputs: dict[str, Path], tmp_path: Path
) -> None:
    assert DECODER_PROFILES["tiny"].context == "slots"  # the default, in both profiles
    assert DECODER_PROFILES["full"].context == "slots"
    slots = epoch_rows(train(decoder_inputs, tmp_path / "slots", "slots").metrics)[-1]
    tokens = epoch_rows(train(decoder_inputs, tmp_path / "tokens", "tokens").metrics)[-1]
    # Read from the slots, as at inference: the decoder trained on them wins.
    assert slots["token_accuracy_from_slots"] > tokens["token_accuracy_from_slots"]
    # The slot-trained decoder's own metric is the slot one; the token-trained one reads
    # per-token features (which show it the very tokens it predicts) and does well only there.
    assert slots["token_accuracy_from_slots"] == slots["token_accuracy"]
    assert tokens["token_accuracy"] > tokens["token_accuracy_from_slots"]
