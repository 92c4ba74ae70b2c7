"""A local fake of Stripe's API (the part billing uses), serving Stripe's published fixture shapes:
for tests, benchmarks and the demo. See :mod:`controlplane.billing.fake_stripe.fake`."""

from controlplane.billing.fake_stripe.fake import (
    API_VERSION,
    FAULT_KINDS,
    STATUSES,
    FakeStripe,
    FaultKind,
    Proration,
    RecordedRequest,
)

__all__ = [
    "API_VERSION",
    "FAULT_KINDS",
    "STATUSES",
    "FakeStripe",
    "FaultKind",
    "Proration",
    "RecordedRequest",
]
