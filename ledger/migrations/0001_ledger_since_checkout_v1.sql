-- Migration 0001, owned by ledger: the ledger's tables and functions from the 2026-11-27-checkout-v1 release to
-- the first release with versioned migrations. Every statement is guarded (IF NOT EXISTS, OR REPLACE, a DO block
-- that looks first): databases of the releases between those two had some of these changes and not others.

-- The bookkeeping of versioned migrations (ledger/migrate.py); it replaces kontor_schema, which recorded the
-- SHA-256 of each schema.sql applied whole.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer     PRIMARY KEY CHECK (version >= 1),
    name        text        NOT NULL,
    sha256      text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    how         text        NOT NULL CHECK (how IN ('installed', 'migrated')),
    applied_at  timestamptz NOT NULL DEFAULT now()
);
DROP TABLE IF EXISTS kontor_schema;

ALTER TABLE entries ADD COLUMN IF NOT EXISTS posted_by bigint;

-- The audit trail of actions that are not entries themselves (ledger/audit.py): who, when, why. Append-only.
CREATE TABLE IF NOT EXISTS audit_actions (
    merchant_id bigint      NOT NULL,
    action_id   bigint      GENERATED ALWAYS AS IDENTITY,
    business    smallint,
    at          timestamptz NOT NULL DEFAULT now(),
    key_id      bigint,     -- NULL: Kontor itself (a scheduled job)
    action      text        NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_]+$'),
    subject     text        NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    reason      text        CHECK (length(reason) BETWEEN 1 AND 500),
    details     jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (merchant_id, action_id)
);
CREATE INDEX IF NOT EXISTS audit_actions_by_business ON audit_actions (merchant_id, business, action_id);
DROP TRIGGER IF EXISTS audit_actions_append_only ON audit_actions;
CREATE TRIGGER audit_actions_append_only BEFORE UPDATE OR DELETE ON audit_actions FOR EACH ROW
    EXECUTE FUNCTION kontor_reject_change();
DROP TRIGGER IF EXISTS audit_actions_no_truncate ON audit_actions;
CREATE TRIGGER audit_actions_no_truncate BEFORE TRUNCATE ON audit_actions FOR EACH STATEMENT
    EXECUTE FUNCTION kontor_reject_change();
-- the order an entry belongs to, beside its document number in `reference` (an invoice, credit note, goodwill or
-- payment number): DATEV Belegfeld 2, and what dunning groups a customer's claims by
ALTER TABLE entries ADD COLUMN IF NOT EXISTS order_reference text CHECK (length(order_reference) BETWEEN 1 AND 200);
CREATE INDEX IF NOT EXISTS entries_by_order_reference
    ON entries (merchant_id, business, order_reference) WHERE order_reference IS NOT NULL;

-- Each account's whole-history sums per currency, spread over the same slots as balance_totals (no day):
-- what kontor_post_entries checks the account bound against (debits, and credits, at most 9 x 10^15 minor
-- units each), and what the overdraft guard reads, 16 rows per account whatever its history.
CREATE TABLE IF NOT EXISTS account_totals (
    merchant_id  bigint   NOT NULL,
    business     smallint NOT NULL,
    account_id   bigint   NOT NULL,
    currency     text     NOT NULL,
    slot         smallint NOT NULL CHECK (slot >= 0),
    debit_minor  bigint   NOT NULL CHECK (debit_minor >= 0),
    credit_minor bigint   NOT NULL CHECK (credit_minor >= 0),
    PRIMARY KEY (merchant_id, business, account_id, currency, slot)
);
-- account_totals arrived after balance_totals: filled once from it, while no posting runs (SHARE lock until
-- this schema transaction commits). Sums beyond bigint (books from before the bound) are capped.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM account_totals) AND EXISTS (SELECT 1 FROM balance_totals) THEN
        LOCK TABLE balance_totals IN SHARE MODE;
        INSERT INTO account_totals (merchant_id, business, account_id, currency, slot, debit_minor, credit_minor)
        SELECT merchant_id, business, account_id, currency, 0,
               LEAST(sum(debit_minor), 9223372036854775807), LEAST(sum(credit_minor), 9223372036854775807)
          FROM balance_totals GROUP BY merchant_id, business, account_id, currency;
    END IF;
END $$;
-- kontor_post_entries writes posted_by and order_reference, and keeps account_totals (schema.sql has its
-- description).
CREATE OR REPLACE FUNCTION kontor_post_entries(
    p_merchant bigint, p_business smallint, p_slot smallint, p_idem_key text, p_request_sha256 bytea,
    p_entries json, p_lines json, p_guarded json)
RETURNS TABLE (entry_id bigint, recorded_at timestamptz, replayed boolean, request_sha256 bytea)
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_ids bigint[];
    v_accounts bigint[];
    v_currencies text[];
    v_guard record;
BEGIN
    IF p_idem_key IS NOT NULL THEN
        RETURN QUERY SELECT unnest(k.entry_ids), NULL::timestamptz, true, k.request_sha256
                       FROM idempotency_keys k
                      WHERE k.merchant_id = p_merchant AND k.idem_key = p_idem_key;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;

    -- accounts that may not go negative: serialize their postings, in id order (no lock cycles)
    FOR v_guard IN SELECT g.a FROM json_to_recordset(p_guarded) AS g(a bigint) ORDER BY g.a LOOP
        PERFORM pg_advisory_xact_lock((1::bigint << 61) | v_guard.a);
    END LOOP;

    v_ids := ARRAY(SELECT nextval('entry_id_seq') FROM generate_series(1, json_array_length(p_entries)));

    INSERT INTO entries (merchant_id, business, entry_id, effective_date, description, reference,
                         metadata, reverses, content_sha256, posted_by, order_reference)
    SELECT p_merchant, p_business, v_ids[x.i], x.d, x.t, x.r, COALESCE(x.m, '{}'), x.v, decode(x.h, 'hex'), x.k, x.o
      FROM json_to_recordset(p_entries)
        AS x(i int, d date, t text, r text, m jsonb, v bigint, h text, k bigint, o text);

    -- the lines, and their sums added into this posting's slot of the accounts' totals and of their days.
    -- Every posting takes its row locks in the same order: account_totals (the main query), then
    -- balance_totals (by_day, run after it), each in key order: no lock cycles.
    WITH posted AS (
        INSERT INTO lines (merchant_id, business, entry_id, line_no, account_id, customer, side,
                           amount_minor, currency, effective_date)
        SELECT p_merchant, p_business, v_ids[l.e], l.n, l.a, l.c, l.s, l.x, l.k, l.d
          FROM json_to_recordset(p_lines) AS l(e int, n smallint, d date, a bigint, c text, s text, x bigint, k text)
        RETURNING account_id, currency, effective_date, side, amount_minor),
    by_day AS (
        INSERT INTO balance_totals AS t (merchant_id, business, account_id, currency, day, slot,
                                         debit_minor, credit_minor)
        SELECT p_merchant, p_business, account_id, currency, effective_date, p_slot,
               COALESCE(sum(amount_minor) FILTER (WHERE side = 'D'), 0),
               COALESCE(sum(amount_minor) FILTER (WHERE side = 'C'), 0)
          FROM posted
         GROUP BY account_id, currency, effective_date
         ORDER BY account_id, currency, effective_date
        ON CONFLICT (merchant_id, business, account_id, currency, day, slot) DO UPDATE
           SET debit_minor = t.debit_minor + excluded.debit_minor,
               credit_minor = t.credit_minor + excluded.credit_minor),
    touched AS (
        INSERT INTO account_totals AS a (merchant_id, business, account_id, currency, slot, debit_minor, credit_minor)
        SELECT p_merchant, p_business, account_id, currency, p_slot,
               COALESCE(sum(amount_minor) FILTER (WHERE side = 'D'), 0),
               COALESCE(sum(amount_minor) FILTER (WHERE side = 'C'), 0)
          FROM posted
         GROUP BY account_id, currency
         ORDER BY account_id, currency
        ON CONFLICT (merchant_id, business, account_id, currency, slot) DO UPDATE
           SET debit_minor = a.debit_minor + excluded.debit_minor,
               credit_minor = a.credit_minor + excluded.credit_minor
        RETURNING account_id, currency)
    SELECT array_agg(account_id), array_agg(currency) INTO v_accounts, v_currencies FROM touched;

    -- the account bound (ledger/money.py ACCOUNT_TOTAL_MINOR_MAX): debits, and credits, of an account in one
    -- currency add up to at most 9 x 10^15 minor units over its whole history
    FOR v_guard IN
        SELECT a.account_id, a.currency
          FROM account_totals a JOIN unnest(v_accounts, v_currencies) AS u(account_id, currency)
            ON a.account_id = u.account_id AND a.currency = u.currency
         WHERE a.merchant_id = p_merchant AND a.business = p_business
         GROUP BY a.account_id, a.currency
        HAVING sum(a.debit_minor) > 9000000000000000 OR sum(a.credit_minor) > 9000000000000000
         LIMIT 1
    LOOP
        RAISE EXCEPTION 'account % would exceed its total in %', v_guard.account_id, v_guard.currency
            USING ERRCODE = 'KN004', DETAIL = v_guard.account_id::text;
    END LOOP;

    FOR v_guard IN
        SELECT a.account_id, a.currency
          FROM account_totals a
          JOIN json_to_recordset(p_guarded) AS g(a bigint, cn boolean) ON a.account_id = g.a
         WHERE a.merchant_id = p_merchant AND a.business = p_business
         GROUP BY a.account_id, a.currency, g.cn
        HAVING CASE WHEN g.cn THEN sum(a.credit_minor) - sum(a.debit_minor)
                    ELSE sum(a.debit_minor) - sum(a.credit_minor) END < 0
    LOOP
        RAISE EXCEPTION 'account % would go negative in %', v_guard.account_id, v_guard.currency
            USING ERRCODE = 'KN003', DETAIL = v_guard.account_id::text;
    END LOOP;

    IF p_idem_key IS NOT NULL THEN
        INSERT INTO idempotency_keys (merchant_id, idem_key, request_sha256, business, entry_ids)
        VALUES (p_merchant, p_idem_key, p_request_sha256, p_business, v_ids);
    END IF;

    -- recorded_at defaults to now(), the transaction's start time, the same for every entry here
    RETURN QUERY SELECT unnest(v_ids), now(), false, p_request_sha256;
END $$;
-- The business's letterhead: legal name, address, tax ids, register, bank, contact, letter language, logo
-- (ledger/profiles.py validates every field). One row per business code, replaced whole by each PUT.
CREATE TABLE IF NOT EXISTS business_profiles (
    merchant_id   bigint      NOT NULL,
    business      smallint    NOT NULL,
    profile       jsonb       NOT NULL CHECK (jsonb_typeof(profile) = 'object'),
    logo          bytea       CHECK (length(logo) BETWEEN 1 AND 524288),
    logo_type     text        CHECK (logo_type IN ('image/png', 'image/jpeg')),
    logo_width    integer     CHECK (logo_width BETWEEN 1 AND 4000),
    logo_height   integer     CHECK (logo_height BETWEEN 1 AND 4000),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, business),
    FOREIGN KEY (merchant_id, business) REFERENCES businesses (merchant_id, business),
    CONSTRAINT business_profiles_logo_whole CHECK ((logo IS NULL) = (logo_type IS NULL)
        AND (logo IS NULL) = (logo_width IS NULL) AND (logo IS NULL) = (logo_height IS NULL))
);
