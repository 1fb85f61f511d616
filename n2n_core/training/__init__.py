"""How a run trains: the runtime decided once (device, number format, layout, threads), the run's
description and the one function that trains it, the trainer, checkpoints."""
