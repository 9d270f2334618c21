"""Plain helpers shared by the phases: devices, seeding, schedules, weights files, and the
resumable trainer state of checkpoints."""
