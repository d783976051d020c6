"""Reference kernels from the field, each with its spec; defect variants live in ``catalog.bugs``.

``KERNELS`` holds the correct specs that ``tileproof check`` verifies by default.
"""

KERNELS: list = []
