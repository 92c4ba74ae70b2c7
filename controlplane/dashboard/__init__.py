"""What the dashboard API serves, without HTTP: tenants by external id, channels, model choice,
status, banners and announcements, agent usage and service caps.

Every write follows ``controlplane/desired.py`` (desired state + audit row + reconcile mark in one
transaction) where it changes what the agent should be; counters (cap reports) and dismissals are
recorded, not reconciled. ``controlplane/api`` maps these to routes; workers import
:func:`controlplane.dashboard.usage.record_daily_usage` and
:func:`controlplane.dashboard.channels.record_channel_state` to store what the agents report.
"""
