"""Lowering: trace a kernel body with JAX and read it into the tiled schedule model
(:mod:`tileproof.model`)."""

from ._lower import lower as lower
from ._lower import trace as trace
