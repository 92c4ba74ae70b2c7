"""Billing: Stripe webhooks, subscription state, grace periods and plan migration.

Stripe decides who gets an agent. A webhook only says "look at this subscription again"
(:mod:`.webhook`); a queued job re-reads the subscription (:mod:`.sync`) and the tenant follows it
as it is now (:mod:`.entitlement`). Periodic jobs move tenants through the billing and key grace
periods (:mod:`.grace`, :mod:`.keygrace`); :mod:`.migration` moves subscribers between plans.
"""
