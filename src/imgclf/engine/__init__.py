"""The training engine: the loop, evaluation, checkpoints, schedules, weight averaging."""
