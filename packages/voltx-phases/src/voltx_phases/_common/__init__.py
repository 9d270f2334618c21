"""Plain helpers shared by the phases: seeding, schedules, devices, sandboxed execution."""
