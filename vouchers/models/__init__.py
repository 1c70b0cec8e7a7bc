from vouchers.models.campaigns import Campaign, Component
from vouchers.models.expiry import ExpirySweep
from vouchers.models.ledger import (
    Account,
    LedgerBalance,
    LedgerDaily,
    LedgerPosting,
    LedgerTransaction,
    Reason,
)
from vouchers.models.registry import (
    AccountStatus,
    Exclusion,
    ExposedKind,
    RegistryEntry,
)
from vouchers.models.vouchers import Voucher, VoucherStatus

__all__ = [
    "Account",
    "AccountStatus",
    "Campaign",
    "Component",
    "Exclusion",
    "ExpirySweep",
    "ExposedKind",
    "LedgerBalance",
    "LedgerDaily",
    "LedgerPosting",
    "LedgerTransaction",
    "Reason",
    "RegistryEntry",
    "Voucher",
    "VoucherStatus",
]
