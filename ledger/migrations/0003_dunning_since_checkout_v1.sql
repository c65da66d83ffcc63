-- Migration 0003, owned by dunning: the dunning columns added from the 2026-11-27-checkout-v1 release to the first
-- release with versioned migrations.

-- the principal per claim: [{"key", "order", "due", "by_rate": {"19": gross minor}}], so that a later payment
-- recovers the claim it names, else the oldest (dunning/recovery.py); NULL for write-offs from before
ALTER TABLE write_offs ADD COLUMN IF NOT EXISTS principal_by_order jsonb;
