"""Every status FlowForge writes, named once: a `StrEnum` per column's vocabulary and the sets
derived from them. Columns stay plain strings (no migration): a member is a `str` equal to its
value, so it compares, hashes, formats and serialises exactly as the bare string did."""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    """`orders.status`: pending → running → completed, or → compensating → failed /
    needs_attention / cancelled."""

    PENDING = "pending"
    RUNNING = "running"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    FAILED = "failed"
    NEEDS_ATTENTION = "needs_attention"
    CANCELLED = "cancelled"


class StepKind(StrEnum):
    """`saga_steps.kind`: a forward step, or the compensation that undoes one."""

    STEP = "step"
    COMPENSATION = "compensation"


class StepStatus(StrEnum):
    """`saga_steps.status` of a row of kind `step`."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class CompensationStatus(StrEnum):
    """`saga_steps.status` of a row of kind `compensation`."""

    REGISTERED = "registered"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    FAILED = "failed"
    SKIPPED = "skipped"


class EventStatus(StrEnum):
    """`saga_events.status`: what one attempt of a step or compensation did."""

    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"


class ReservationStatus(StrEnum):
    """`reservations.status`."""

    HELD = "held"
    RELEASED = "released"


class ChargeStatus(StrEnum):
    """`payments.status`."""

    CHARGED = "charged"
    REFUNDED = "refunded"


class PaymentProvider(StrEnum):
    """`payments.provider`: where the charge lives."""

    EMBEDDED = "embedded"  # a row in this database, no network (the default)
    STRIPE = "stripe"  # a PaymentIntent at Stripe (or its local double); `charge_id` is its id
    # a charge at the provider of before Stripe (a retired contract): rows of older databases,
    # read as they are and reconciled with nothing
    HTTP = "http"


class ChargeRequestStatus(StrEnum):
    """`charge_requests.status`: what FlowForge knows of its charge request to the provider
    (at Stripe: the confirmation of the order's PaymentIntent, whose id is recorded first)."""

    SENDING = "sending"  # sent (or about to be); no answer yet: a crash leaves it in doubt
    UNREACHABLE = "unreachable"  # every attempt so far failed to connect: nothing reached it
    IN_DOUBT = "in_doubt"  # a timeout, a dropped connection, a 5xx or a 4xx: it may have charged
    CHARGED = "charged"  # the provider answered with the charge
    DECLINED = "declined"  # the provider declined the card: nothing charged
    CANCELED = "canceled"  # the refund canceled the PaymentIntent: it can never charge


class WarehouseStatus(StrEnum):
    """`warehouse_records.status`."""

    APPLIED = "applied"
    REVERTED = "reverted"


TERMINAL_STATUSES = frozenset(
    {
        OrderStatus.COMPLETED,
        OrderStatus.FAILED,
        OrderStatus.NEEDS_ATTENTION,
        OrderStatus.CANCELLED,
    }
)
ACTIVE_STATUSES = frozenset({OrderStatus.PENDING, OrderStatus.RUNNING, OrderStatus.COMPENSATING})
# ended with everything undone: the order holds nothing
SETTLED_STATUSES = frozenset({OrderStatus.FAILED, OrderStatus.CANCELLED})
ORDER_STATUSES = (
    OrderStatus.PENDING,
    OrderStatus.RUNNING,
    OrderStatus.COMPENSATING,
    *sorted(TERMINAL_STATUSES),
)
