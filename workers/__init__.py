"""Background workers: the reconcile queue's claim/lease half, the reconciler, the health poller,
periodic jobs and the worker process. Filled in by the workers issue; they alone call Fly to change
a tenant."""
