"""Studiolo's in-container toolkit: the SageMaker-compatible ``train`` entry point.

See ``/work/shared/sagemaker-contract.md`` section 1 (mirrored in the project docs) for the
contract this package implements.
"""

from __future__ import annotations

__version__ = "0.1.0"
