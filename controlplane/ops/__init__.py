"""What the ops CLI reads and does beyond desired state: fleet and tenant views, the audit tail,
the orphan scan. Pure reads of the database (and, for orphans, of Fly); every change a command makes
to a tenant still goes through :mod:`controlplane.desired`."""
