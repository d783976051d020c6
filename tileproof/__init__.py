"""tileproof: specify tiled kernels as JAX functions, prove their schedules sound for every shape."""
