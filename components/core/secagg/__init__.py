"""Secure aggregation (Bonawitz et al. 2017): the coordinator learns only the sum of the parties' vectors."""

from components.core.secagg.encoding import FixedPoint
from components.core.secagg.protocol import (
    AdvertiseKeys,
    EncryptedShares,
    KeyRoster,
    MaskedInput,
    PublicKeys,
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    ShareBundle,
    UnmaskRequest,
    UnmaskShares,
)

__all__ = [
    "AdvertiseKeys",
    "EncryptedShares",
    "FixedPoint",
    "KeyRoster",
    "MaskedInput",
    "PublicKeys",
    "SecAggClient",
    "SecAggConfig",
    "SecAggServer",
    "ShareBundle",
    "UnmaskRequest",
    "UnmaskShares",
]
