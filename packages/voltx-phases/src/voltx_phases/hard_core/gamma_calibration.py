"""Phase 3.2: certainty calibration, raw sample confidence -> probability that the code passes.

    voltx run 3.2                          # tiny profile: the generated problems, seconds
    voltx run 3.2 --profile full --backend vast
    python -c 'import voltx; voltx.run("3.2")'

The original has an ECE function and nothing to calibrate with. This phase (`docs/phases.md`,
3.2):

1. samples the model (`VoltModel.generate`, `samples_per_problem` each) on the configured
   datasets' problems that have tests, runs every sample against them in the sandbox, and pairs
   the sample's raw confidence (`voltx.generation.GeneratedSample.confidence`) with its pass
   rate; pairs are checkpointed as they come (`gamma_pairs`);
2. splits the problems (never the samples of one problem) into fitting and held-out ones;
3. compares isotonic regression, temperature and Platt scaling by log-loss over folds of the
   fitting problems, and refits the best on all of them;
4. reports on the held-out problems ECE (10 bins, the original's, and 15), Brier score and
   log-loss before and after, with ECE's noise floor at that many pairs (`gamma_report`).

Output: `gamma_calibration` (the chosen curve, `gamma_curve.GammaCurve`) and
`gamma_calibration_report` (metrics.json, reliability.png).
"""

from __future__ import annotations

import attrs
import numpy as np

from voltx import PhaseContext
from voltx_phases.generation import VOLT_X_ARTIFACTS
from voltx_phases.hard_core.gamma_config import GammaCalibrationConfig
from voltx_phases.hard_core.gamma_curve import GAMMA_CURVE_FILE
from voltx_phases.hard_core.gamma_fitting import FITTERS, log_loss
from voltx_phases.hard_core.gamma_pairs import CalibrationPairs, collect_pairs, load_problems
from voltx_phases.hard_core.gamma_report import held_out_metrics, write_report


@attrs.frozen(eq=False)
class Split:
    """Which problems are held out (bool per problem), and the fold of each fitting problem."""

    held_out: np.ndarray  # bool [P]
    fold: np.ndarray  # int64 [P]: -1 for held-out problems


def split_problems(count: int, held_out: int, folds: int, seed: int) -> Split:
    """A seeded split of `count` problems: `held_out` of them (at most half) held out, the rest
    dealt into `folds` folds (at most one per problem)."""
    order = np.random.default_rng(seed).permutation(count)
    held = min(held_out, count // 2)
    is_held = np.zeros(count, dtype=bool)
    is_held[order[:held]] = True
    fold = np.full(count, -1, dtype=np.int64)
    fitting = order[held:]
    fold[fitting] = np.arange(fitting.size) % min(folds, fitting.size)
    return Split(is_held, fold)


def select_method(pairs: CalibrationPairs, fold_of_pair: np.ndarray) -> dict[str, float]:
    """Each calibrator's log-loss over its out-of-fold predictions on the fitting pairs."""
    losses: dict[str, float] = {}
    for method, fit in FITTERS.items():
        predicted = np.empty(pairs.confidence.size)
        for fold in np.unique(fold_of_pair):
            inside = fold_of_pair == fold
            curve = fit(pairs.confidence[~inside], pairs.pass_rate[~inside])
            predicted[inside] = curve.apply(pairs.confidence[inside])
        losses[method] = log_loss(predicted, pairs.pass_rate)
    return losses


def _subset(pairs: CalibrationPairs, chosen: np.ndarray) -> CalibrationPairs:
    return CalibrationPairs(
        pairs.problem[chosen], pairs.confidence[chosen], pairs.pass_rate[chosen]
    )


def run(ctx: PhaseContext) -> None:
    config: GammaCalibrationConfig = ctx.config
    problems = load_problems(ctx, config)
    import torch

    from voltx_phases._common.devices import resolve_device
    from voltx_phases.models.inference import VoltModel

    if config.threads:
        torch.set_num_threads(config.threads)
    model = VoltModel.from_artifacts(
        {name: ctx.inputs[name] for name in VOLT_X_ARTIFACTS}, resolve_device(config.device, ctx)
    )
    pairs = collect_pairs(ctx, config, model, problems)
    split = split_problems(
        len(problems), config.held_out_problems, config.selection_folds, config.seed
    )
    held = split.held_out[pairs.problem]
    fitting, held_out = _subset(pairs, ~held), _subset(pairs, held)
    selection = select_method(fitting, split.fold[fitting.problem])
    method = min(selection, key=lambda name: selection[name])  # ties: FITTERS' order
    curve = FITTERS[method](fitting.confidence, fitting.pass_rate)
    curve.write(ctx.outputs["gamma_calibration"] / GAMMA_CURVE_FILE)
    metrics = held_out_metrics(held_out, curve, config)
    metrics.update(
        method=method,
        selection_log_loss=selection,
        problems=len(problems),
        fitting_problems=int((~split.held_out).sum()),
        held_out_problems=int(split.held_out.sum()),
        fitting_pairs=int(fitting.confidence.size),
        mean_pass_rate=float(pairs.pass_rate.mean()),
        all_tests_passed=int((pairs.pass_rate == 1.0).sum()),
        per_method_held_out_log_loss={
            name: log_loss(
                fit(fitting.confidence, fitting.pass_rate).apply(held_out.confidence),
                held_out.pass_rate,
            )
            for name, fit in FITTERS.items()
        },
    )
    write_report(ctx.outputs["gamma_calibration_report"], ctx.phase_id, held_out, curve, metrics)
    ctx.log.info(
        "gamma calibrated",
        method=method,
        held_out_pairs=metrics["held_out_pairs"],
        ece_before=metrics["before"]["ece_10"],
        ece_after=metrics["after"]["ece_10"],
        ece_noise_floor=metrics["noise_floor"]["ece_10_mean"],
    )
