"""Training: the loop, checkpoints and resume, losses, sparse item tables, provenance, and the
process's device and DDP rank."""
