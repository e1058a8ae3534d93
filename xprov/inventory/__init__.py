"""The phones: an immutable snapshot, replaced whole, never edited, and its sources."""

from xprov.inventory.snapshot import (
    BadRecord,
    Inventory,
    InventoryError,
    Line,
    Phone,
    phone_from_record,
)

__all__ = ["BadRecord", "Inventory", "InventoryError", "Line", "Phone", "phone_from_record"]
