"""The Volt X training phases for voltx, registered as a voltx plugin (`plugin.py`).

One folder per phase family, each with one torch-free ``specs.py`` (its `PhaseSpec` tuple
``PHASES`` and the artifact checks it registers, ``ARTIFACT_CHECKS``) and one entry module per
phase, named after what the phase does:

    datasets/     0.2  dataset_pipeline.py       public datasets or embedded data -> problem JSONL
    translator/   1.1  encoder_training.py       BPE tokenizer, CNN code encoder (with 1.3)
                  1.2  decoder_training.py       code decoder over the frozen encoder
    codebook/     0.3  codebook_building.py      corpus slot vectors, k-means, VXCB file, HNSW
    soft_core/    0.4  code_attention_bias.py    the constant 16x16 prior of slot attention
                  2.0  problem_frames.py         problem datasets encoded once into frames
                  2.1  vfn_flow_matching.py      ScaledVFN flow matching with 2.2 and 2.3

The families still to come take the same shape: ``hard_core/`` (3.x: router, certainty and
safety calibration), ``alignment/`` (4.x: end-to-end fine-tuning, RLVF, sleep consolidation) and
``scale/`` (5.x: distillation to larger VFNs, per-language decoders, benchmarks).

Beside the families, code more than one of them uses:

    models/       the shared model definitions (encoder, decoder, ScaledVFN, slot attention,
                  diffusion controller, the RAR loop) and the loaders and checks of their
                  weights files (`models/loading.py`); tensor names in `docs/formats.md`
    execution/    the sandbox that runs code voltx did not write (0.2 now; 3.2, 4.x, 5.x later)
    _common/      plain helpers: devices, seeding, schedules, weights files, checkpoint state

`plugin.py` only concatenates the families' specs and checks. Phases and their files are
described in `docs/phases.md` and `docs/formats.md`.
"""
