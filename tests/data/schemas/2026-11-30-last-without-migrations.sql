-- Kontor schema: the ledger's invariants live here, not only in Python.
--
-- Applied by the service at start (ledger/db.py) inside one transaction under an advisory lock, and
-- only when its SHA-256 differs from the one recorded in kontor_schema; every statement is therefore
-- idempotent (IF NOT EXISTS / OR REPLACE / DROP ... IF EXISTS before CREATE TRIGGER).
--
-- Guarantees enforced by the database (each is checked again in the pure domain code, ledger/domain.py):
--   * entries, lines, chain links and period closes are append-only: UPDATE, DELETE and TRUNCATE raise;
--   * every entry balances per currency, checked at COMMIT by a deferred constraint trigger;
--   * lines can only be added in the transaction that created their entry;
--   * amounts are positive integers in minor units (CHECK), bounded so sums cannot overflow bigint;
--   * no entry is dated in a closed period (trigger + advisory lock shared with the period close);
--   * every table carries merchant_id in its primary key, unique constraints and foreign keys, so the
--     schema can be distributed by merchant (Citus) without rework. `merchants` and `base_rates`-like
--     operator tables are reference tables.
--
-- Balances: lines are the truth; balance_totals is a projection, one row per
-- (account, currency, effective day, slot). A posting adds into one of N slots chosen at random, so a
-- hot account (PSP clearing, revenue, VAT) is N rows instead of one and concurrent postings rarely wait
-- on each other's row locks. Reads sum the slots (and days up to an as-of date).

CREATE TABLE IF NOT EXISTS kontor_schema (
    sha256      text        PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS merchants (
    merchant_id bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS businesses (
    merchant_id    bigint      NOT NULL REFERENCES merchants (merchant_id),
    business       smallint    NOT NULL CHECK (business BETWEEN 1000 AND 9999),
    country        text        NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    currency       text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    chart          text        NOT NULL CHECK (chart IN ('skr03', 'skr04')),
    vat_rates      numeric(5, 2)[] NOT NULL,
    closed_through date,       -- last day of the latest closed month; NULL while no month is closed
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, business)
);

CREATE TABLE IF NOT EXISTS api_keys (
    merchant_id bigint      NOT NULL REFERENCES merchants (merchant_id),
    key_id      bigint      GENERATED ALWAYS AS IDENTITY,
    secret_sha256 bytea     NOT NULL CHECK (length(secret_sha256) = 32),
    role        text        NOT NULL CHECK (role IN ('accountant', 'poster', 'admin')),
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    PRIMARY KEY (merchant_id, key_id)
);

CREATE TABLE IF NOT EXISTS accounts (
    merchant_id    bigint   NOT NULL,
    business       smallint NOT NULL,
    account_id     bigint   GENERATED ALWAYS AS IDENTITY,
    number         text     NOT NULL CHECK (number ~ '^[0-9A-Za-z][0-9A-Za-z._-]{0,19}$'),
    name           text     NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    type           text     NOT NULL CHECK (type IN ('asset', 'liability', 'equity', 'revenue', 'expense')),
    role           text     CHECK (role ~ '^[A-Z][A-Z0-9_]{0,31}$'),
    vat_rate       numeric(5, 2) CHECK (vat_rate >= 0 AND vat_rate < 100),
    alt_number     text     CHECK (length(alt_number) BETWEEN 1 AND 20),
    allow_negative boolean  NOT NULL DEFAULT true,
    customer_ledger boolean NOT NULL DEFAULT false,  -- lines on it name a customer (debtor sub-ledger)
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, business, account_id),
    UNIQUE (merchant_id, business, number),
    FOREIGN KEY (merchant_id, business) REFERENCES businesses (merchant_id, business)
);
CREATE UNIQUE INDEX IF NOT EXISTS accounts_role_key
    ON accounts (merchant_id, business, role) WHERE role IS NOT NULL;

CREATE SEQUENCE IF NOT EXISTS entry_id_seq AS bigint;

CREATE TABLE IF NOT EXISTS entries (
    merchant_id    bigint      NOT NULL,
    business       smallint    NOT NULL,
    entry_id       bigint      NOT NULL DEFAULT nextval('entry_id_seq'),
    effective_date date        NOT NULL CHECK (effective_date BETWEEN DATE '1900-01-01' AND DATE '2999-12-31'),
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    description    text        NOT NULL CHECK (length(description) BETWEEN 1 AND 500),
    reference      text        CHECK (length(reference) BETWEEN 1 AND 200),
    metadata       jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    reverses       bigint,
    content_sha256 bytea       NOT NULL CHECK (length(content_sha256) = 32),
    xid            xid8        NOT NULL DEFAULT pg_current_xact_id(),
    posted_by      bigint,     -- the API key of the request that posted it (ledger/audit.py); NULL: Kontor itself
    PRIMARY KEY (merchant_id, business, entry_id),
    -- the business code is checked by entries_open_period (see "References on the posting path" below)
    FOREIGN KEY (merchant_id, business, reverses) REFERENCES entries (merchant_id, business, entry_id)
);
CREATE INDEX IF NOT EXISTS entries_by_date ON entries (merchant_id, business, effective_date, entry_id);
CREATE INDEX IF NOT EXISTS entries_by_reference
    ON entries (merchant_id, business, reference) WHERE reference IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_by_metadata
    ON entries USING gin (metadata jsonb_path_ops) WHERE metadata <> '{}';
CREATE UNIQUE INDEX IF NOT EXISTS entries_reversed_once
    ON entries (merchant_id, business, reverses) WHERE reverses IS NOT NULL;
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
CREATE INDEX IF NOT EXISTS entries_by_xid ON entries (xid, entry_id);
-- the order an entry belongs to, beside its document number in `reference` (an invoice, credit note, goodwill or
-- payment number): DATEV Belegfeld 2, and what dunning groups a customer's claims by
ALTER TABLE entries ADD COLUMN IF NOT EXISTS order_reference text CHECK (length(order_reference) BETWEEN 1 AND 200);
CREATE INDEX IF NOT EXISTS entries_by_order_reference
    ON entries (merchant_id, business, order_reference) WHERE order_reference IS NOT NULL;

CREATE TABLE IF NOT EXISTS lines (
    merchant_id    bigint   NOT NULL,
    business       smallint NOT NULL,
    entry_id       bigint   NOT NULL,
    line_no        smallint NOT NULL CHECK (line_no >= 1),
    account_id     bigint   NOT NULL,
    customer       text     CHECK (length(customer) BETWEEN 1 AND 64),
    side           char(1)  NOT NULL CHECK (side IN ('D', 'C')),
    -- 10^15 minor units (10 trillion EUR) per line keeps every sum far inside bigint
    amount_minor   bigint   NOT NULL CHECK (amount_minor > 0 AND amount_minor <= 1000000000000000),
    currency       text     NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    effective_date date     NOT NULL,   -- copy of the entry's, so registers read one index
    PRIMARY KEY (merchant_id, business, entry_id, line_no)
    -- entry and account are checked by lines_same_transaction (see "References on the posting path" below)
);
CREATE INDEX IF NOT EXISTS lines_register
    ON lines (merchant_id, business, account_id, effective_date, entry_id, line_no);
CREATE INDEX IF NOT EXISTS lines_by_customer
    ON lines (merchant_id, business, customer, effective_date, entry_id) WHERE customer IS NOT NULL;

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

CREATE TABLE IF NOT EXISTS balance_totals (
    merchant_id  bigint   NOT NULL,
    business     smallint NOT NULL,
    account_id   bigint   NOT NULL,
    currency     text     NOT NULL,
    day          date     NOT NULL,
    slot         smallint NOT NULL CHECK (slot >= 0),
    debit_minor  bigint   NOT NULL CHECK (debit_minor >= 0),
    credit_minor bigint   NOT NULL CHECK (credit_minor >= 0),
    PRIMARY KEY (merchant_id, business, account_id, currency, day, slot)
);
-- rows of past days still spread over slots, for kontor_compact_balance_slots
CREATE INDEX IF NOT EXISTS balance_totals_to_compact ON balance_totals (day) WHERE slot <> 0;

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

CREATE TABLE IF NOT EXISTS idempotency_keys (
    merchant_id  bigint      NOT NULL,
    idem_key     text        NOT NULL CHECK (length(idem_key) BETWEEN 1 AND 255),
    request_sha256 bytea     NOT NULL CHECK (length(request_sha256) = 32),
    business     smallint    NOT NULL,
    entry_ids    bigint[]    NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, idem_key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_by_age ON idempotency_keys (created_at);

CREATE TABLE IF NOT EXISTS period_closes (
    merchant_id bigint      NOT NULL,
    business    smallint    NOT NULL,
    period      date        NOT NULL CHECK (extract(day FROM period) = 1),
    closed_at   timestamptz NOT NULL DEFAULT now(),
    closed_by   text        NOT NULL,
    PRIMARY KEY (merchant_id, business, period),
    FOREIGN KEY (merchant_id, business) REFERENCES businesses (merchant_id, business)
);

-- Hash chain per business code. Entries are linked asynchronously (ledger/chain.py) in the order of the
-- inserting transaction id, so posting never waits on a per-business chain head.
CREATE TABLE IF NOT EXISTS chain_links (
    merchant_id bigint   NOT NULL,
    business    smallint NOT NULL,
    seq         bigint   NOT NULL CHECK (seq >= 1),
    entry_id    bigint   NOT NULL,
    link_sha256 bytea    NOT NULL CHECK (length(link_sha256) = 32),
    PRIMARY KEY (merchant_id, business, seq),
    UNIQUE (merchant_id, business, entry_id)
);

CREATE TABLE IF NOT EXISTS chain_heads (
    merchant_id bigint   NOT NULL,
    business    smallint NOT NULL,
    seq         bigint   NOT NULL,
    link_sha256 bytea    NOT NULL,
    PRIMARY KEY (merchant_id, business),
    FOREIGN KEY (merchant_id, business) REFERENCES businesses (merchant_id, business)
);

-- Operator-level: how far the chainer has looked (all transactions below this xid are finished).
CREATE TABLE IF NOT EXISTS chain_watermark (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    xid_done   xid8    NOT NULL,
    entry_done bigint  NOT NULL
);
INSERT INTO chain_watermark (xid_done, entry_done) VALUES ('0'::xid8, 0) ON CONFLICT DO NOTHING;

-- ---------------------------------------------------------------------------------------------------
-- Append-only enforcement
-- ---------------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION kontor_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'KN100', HINT = 'post a reversal or correcting entry instead';
END $$;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['entries', 'lines', 'chain_links', 'period_closes', 'audit_actions'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_append_only', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I FOR EACH ROW '
                       'EXECUTE FUNCTION kontor_reject_change()', t || '_append_only', t);
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_no_truncate', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT '
                       'EXECUTE FUNCTION kontor_reject_change()', t || '_no_truncate', t);
    END LOOP;
END $$;

-- Accounts and businesses are never deleted and their keys never change: lines keep pointing at them.
CREATE OR REPLACE FUNCTION kontor_protect_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'accounts are never deleted' USING ERRCODE = 'KN100';
    END IF;
    IF (NEW.merchant_id, NEW.business, NEW.account_id, NEW.type, NEW.allow_negative, NEW.customer_ledger)
            IS DISTINCT FROM
       (OLD.merchant_id, OLD.business, OLD.account_id, OLD.type, OLD.allow_negative, OLD.customer_ledger) THEN
        RAISE EXCEPTION 'account keys, type, overdraft rule and customer ledger flag are immutable'
            USING ERRCODE = 'KN100';
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION kontor_protect_business() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'business codes are never deleted' USING ERRCODE = 'KN100';
    END IF;
    IF (NEW.merchant_id, NEW.business, NEW.currency) IS DISTINCT FROM (OLD.merchant_id, OLD.business, OLD.currency) THEN
        RAISE EXCEPTION 'business code and currency are immutable' USING ERRCODE = 'KN100';
    END IF;
    IF OLD.closed_through IS NOT NULL AND (NEW.closed_through IS NULL OR NEW.closed_through < OLD.closed_through) THEN
        RAISE EXCEPTION 'a closed period cannot be reopened' USING ERRCODE = 'KN100';
    END IF;
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS accounts_protect_keys ON accounts;
CREATE TRIGGER accounts_protect_keys BEFORE UPDATE OR DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION kontor_protect_account();
DROP TRIGGER IF EXISTS businesses_protect_keys ON businesses;
CREATE TRIGGER businesses_protect_keys BEFORE UPDATE OR DELETE ON businesses
    FOR EACH ROW EXECUTE FUNCTION kontor_protect_business();

-- ---------------------------------------------------------------------------------------------------
-- Balanced entries, checked at commit
-- ---------------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION kontor_check_entry_balanced() RETURNS trigger
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_currencies int;
    v_unbalanced text;
BEGIN
    SELECT count(*), min(currency) FILTER (WHERE net <> 0) INTO v_currencies, v_unbalanced
      FROM (SELECT currency, sum(CASE side WHEN 'D' THEN amount_minor ELSE -amount_minor END) AS net
              FROM lines
             WHERE merchant_id = NEW.merchant_id AND business = NEW.business AND entry_id = NEW.entry_id
             GROUP BY currency) per_currency;
    IF v_currencies = 0 THEN
        RAISE EXCEPTION 'entry % has no lines', NEW.entry_id USING ERRCODE = 'check_violation';
    END IF;
    IF v_unbalanced IS NOT NULL THEN
        RAISE EXCEPTION 'entry % does not balance in %', NEW.entry_id, v_unbalanced
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS entries_balanced ON entries;
CREATE CONSTRAINT TRIGGER entries_balanced AFTER INSERT ON entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kontor_check_entry_balanced();

-- References on the posting path. Lines name their entry and account, entries their business code.
-- These are checked by the statement triggers below instead of FOREIGN KEY constraints: a foreign key
-- takes a KEY SHARE row lock on the referenced row for every line, so every posting would lock (and
-- WAL-log a lock on) the same hot account rows. The checks are as strong as foreign keys because the
-- referenced rows can never be deleted or re-keyed (kontor_protect_*, kontor_reject_change).
-- Trigger functions only look rows up by key: enable_seqscan = off keeps plans cached while a table
-- was small from scanning it whole once it is large.

-- Lines belong to an entry of the same transaction, share its effective date, and name an account of
-- the same business code.
CREATE OR REPLACE FUNCTION kontor_check_new_lines() RETURNS trigger
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE v_line record;
BEGIN
    SELECT l.entry_id, l.account_id,
           (SELECT e.xid = pg_current_xact_id() AND e.effective_date = l.effective_date
              FROM entries e
             WHERE e.merchant_id = l.merchant_id AND e.business = l.business AND e.entry_id = l.entry_id) AS entry_ok,
           EXISTS (SELECT 1 FROM accounts a
                    WHERE a.merchant_id = l.merchant_id AND a.business = l.business
                      AND a.account_id = l.account_id) AS account_ok
      INTO v_line
      FROM new_lines l
     WHERE (SELECT e.xid = pg_current_xact_id() AND e.effective_date = l.effective_date
              FROM entries e
             WHERE e.merchant_id = l.merchant_id AND e.business = l.business AND e.entry_id = l.entry_id) IS NOT TRUE
        OR NOT EXISTS (SELECT 1 FROM accounts a
                        WHERE a.merchant_id = l.merchant_id AND a.business = l.business
                          AND a.account_id = l.account_id)
     LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF v_line.entry_ok IS NOT TRUE THEN
        RAISE EXCEPTION 'lines of entry % must be inserted with the entry and carry its date', v_line.entry_id
            USING ERRCODE = 'KN100';
    END IF;
    RAISE EXCEPTION 'account % does not exist in this business code', v_line.account_id
        USING ERRCODE = 'foreign_key_violation';
END $$;

DROP TRIGGER IF EXISTS lines_same_transaction ON lines;
CREATE TRIGGER lines_same_transaction AFTER INSERT ON lines
    REFERENCING NEW TABLE AS new_lines FOR EACH STATEMENT EXECUTE FUNCTION kontor_check_new_lines();

-- ---------------------------------------------------------------------------------------------------
-- Closed periods. Postings take a shared advisory lock per business, the close takes it exclusively:
-- a close waits for postings in flight, and postings that start meanwhile see the new close date.
-- ---------------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION kontor_business_lock_key(p_merchant bigint, p_business smallint)
RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT (1::bigint << 60) | (p_merchant << 14) | p_business::bigint
$$;

CREATE OR REPLACE FUNCTION kontor_check_open_period() RETURNS trigger
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    r record;
    v_closed date;
BEGIN
    FOR r IN SELECT merchant_id, business, min(effective_date) AS first_date
               FROM new_entries GROUP BY merchant_id, business LOOP
        PERFORM pg_advisory_xact_lock_shared(kontor_business_lock_key(r.merchant_id, r.business));
        SELECT closed_through INTO v_closed FROM businesses
         WHERE merchant_id = r.merchant_id AND business = r.business;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'business code % does not exist', r.business USING ERRCODE = 'foreign_key_violation';
        END IF;
        IF v_closed IS NOT NULL AND r.first_date <= v_closed THEN
            RAISE EXCEPTION 'period % is closed', to_char(r.first_date, 'YYYY-MM')
                USING ERRCODE = 'KN001', DETAIL = to_char(v_closed, 'YYYY-MM-DD');
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS entries_open_period ON entries;
CREATE TRIGGER entries_open_period AFTER INSERT ON entries
    REFERENCING NEW TABLE AS new_entries FOR EACH STATEMENT EXECUTE FUNCTION kontor_check_open_period();

CREATE OR REPLACE FUNCTION kontor_close_period(p_merchant bigint, p_business smallint, p_period date, p_by text)
RETURNS date LANGUAGE plpgsql AS $$
DECLARE
    v_through date := (date_trunc('month', p_period) + interval '1 month - 1 day')::date;
    v_closed date;
BEGIN
    PERFORM pg_advisory_xact_lock(kontor_business_lock_key(p_merchant, p_business));
    SELECT closed_through INTO v_closed FROM businesses
     WHERE merchant_id = p_merchant AND business = p_business FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'business % not found', p_business USING ERRCODE = 'KN404';
    END IF;
    IF v_closed IS NOT NULL AND v_closed >= v_through THEN
        RETURN v_closed;  -- already closed: closing again changes nothing
    END IF;
    INSERT INTO period_closes (merchant_id, business, period, closed_by)
    SELECT p_merchant, p_business, month::date, p_by
      FROM generate_series(COALESCE((v_closed + 1)::timestamp,
                                    LEAST((SELECT date_trunc('month', min(effective_date)) FROM entries
                                            WHERE merchant_id = p_merchant AND business = p_business),
                                          date_trunc('month', p_period))),
                           date_trunc('month', p_period), interval '1 month') AS month;
    UPDATE businesses SET closed_through = v_through WHERE merchant_id = p_merchant AND business = p_business;
    RETURN v_through;
END $$;

-- ---------------------------------------------------------------------------------------------------
-- Posting: one round trip for one entry or a batch. The entries and their lines arrive as two JSON
-- arrays (cheaper for the client to send than a dozen parallel arrays):
--   p_entries  [{"i": 1, "d": "2026-11-27", "t": description, "r": reference, "m": {metadata},
--                "v": reverses, "o": order reference, "h": content sha256 as hex}, ...]
--   p_lines    [{"e": entry index, "n": line no, "d": the entry's date, "a": account id, "c": customer,
--                "s": "D"|"C", "x": amount in minor units, "k": currency}, ...]
--   p_guarded  [{"a": account id, "cn": credit-normal}] for accounts that may not go negative
-- Returns the new entry ids in input order, or, when the idempotency key was used before, the stored
-- ids with replayed = true (and the stored request hash, which the caller compares).
-- ---------------------------------------------------------------------------------------------------
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

-- ---------------------------------------------------------------------------------------------------
-- Balance slot compaction: fold the slots of days before p_before into slot 0, at most p_rows_max rows
-- per call; returns how many slot rows were folded. Postings of those days are rare (backdated), so the
-- slots are no longer needed there, and reads then sum about one row per account and day.
-- The move is atomic (DELETE ... RETURNING feeds the upsert) and skips rows a posting holds.
-- ---------------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION kontor_compact_balance_slots(p_before date, p_rows_max int)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE v_moved int;
BEGIN
    WITH picked AS (
        SELECT merchant_id, business, account_id, currency, day, slot FROM balance_totals
         WHERE slot <> 0 AND day < p_before
         LIMIT p_rows_max FOR UPDATE SKIP LOCKED),
    moved AS (
        DELETE FROM balance_totals b USING picked p
         WHERE (b.merchant_id, b.business, b.account_id, b.currency, b.day, b.slot)
             = (p.merchant_id, p.business, p.account_id, p.currency, p.day, p.slot)
        RETURNING b.merchant_id, b.business, b.account_id, b.currency, b.day, b.debit_minor, b.credit_minor),
    folded AS (
        INSERT INTO balance_totals AS t (merchant_id, business, account_id, currency, day, slot,
                                         debit_minor, credit_minor)
        SELECT merchant_id, business, account_id, currency, day, 0, sum(debit_minor), sum(credit_minor)
          FROM moved GROUP BY merchant_id, business, account_id, currency, day
         ORDER BY merchant_id, business, account_id, currency, day
        ON CONFLICT (merchant_id, business, account_id, currency, day, slot) DO UPDATE
           SET debit_minor = t.debit_minor + excluded.debit_minor,
               credit_minor = t.credit_minor + excluded.credit_minor
        RETURNING 1)
    SELECT count(*) INTO v_moved FROM moved;  -- data-modifying CTEs (folded) run whether read or not
    RETURN v_moved;
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

-- ===================================================================================================
-- Payments (payments/): Amazon Pay settings, orders and their documents, the Amazon Pay mirror, IPNs.
-- Business records, mutable where their state changes; every booking they cause is a journal entry.
-- Amazon Pay means the API v2 (Checkout v2); Checkout v1 (MWS) ended on 31 March 2026. Orders created
-- under v1 are kept and managed through v2 (the v1 order reference id is their charge permission id).
-- ===================================================================================================
CREATE TABLE IF NOT EXISTS amazon_pay_settings (
    merchant_id       bigint   NOT NULL,
    business          smallint NOT NULL,
    amazon_merchant_id text    NOT NULL CHECK (amazon_merchant_id ~ '^[A-Z0-9]{5,32}$'),
    store_id          text     CHECK (store_id ~ '^amzn1\.application-oa2-client\.[0-9a-f]{32}$'),
    -- how Kontor signs: with the merchant's own key pair ('keys'), or with Kontor's provider key and a
    -- delegated authorization token ('delegated'); 'v1': Checkout v1 settings, unusable until replaced
    access            text     NOT NULL CHECK (access IN ('keys', 'delegated', 'v1')),
    public_key_id     text     CHECK (public_key_id ~ '^[A-Za-z0-9_-]{8,100}$'),
    private_key_sealed text,   -- the PEM, sealed with AES-GCM (ledger/secrets.py): never stored in clear
    auth_token_sealed text,    -- 'delegated': the v2 authorization token, sealed
    legacy_mws_auth_token text, -- 'v1' only: kept for the token exchange to v2, cleared by it
    region            text     NOT NULL CHECK (region IN ('na', 'eu', 'jp')),
    sandbox           boolean  NOT NULL,
    payment_execution text     NOT NULL CHECK (payment_execution IN ('one_step', 'two_step')),
    verified_at       timestamptz,  -- the signed call that proved the credentials
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, business),
    FOREIGN KEY (merchant_id, business) REFERENCES businesses (merchant_id, business),
    CONSTRAINT amazon_pay_settings_keys CHECK (access <> 'keys' OR (public_key_id IS NOT NULL AND private_key_sealed IS NOT NULL)),
    CONSTRAINT amazon_pay_settings_delegated CHECK (access <> 'delegated' OR auth_token_sealed IS NOT NULL)
);

-- Operator-level (a reference table): an Amazon merchant account belongs to exactly one business code of one
-- merchant. IPNs name only the Amazon merchant id, so this is how they reach the right books; a second
-- merchant cannot claim an account another one connected.
-- A claim is proven (proven_at) once Amazon showed that the business code's credentials act for that account: a
-- delegated token exchanged for it, a payout (disbursement) or settlement report of it, an IPN of it whose object
-- the credentials read. An unproven claim yields to a PUT whose credentials prove the account.
CREATE TABLE IF NOT EXISTS amazon_pay_accounts (
    amazon_merchant_id text     PRIMARY KEY,
    merchant_id        bigint   NOT NULL,
    business           smallint NOT NULL,
    claimed_at         timestamptz NOT NULL DEFAULT now(),
    proven_at          timestamptz
);

CREATE TABLE IF NOT EXISTS orders (
    merchant_id     bigint   NOT NULL,
    business        smallint NOT NULL,
    -- at most 20 characters: Amazon idempotency keys (<= 32) derive from it: <business>-<order>-i2
    order_ref       text     NOT NULL CHECK (order_ref ~ '^[A-Za-z0-9_-]{1,20}$'),
    customer        text     NOT NULL,
    order_date      date     NOT NULL,
    checkout_session_id  text CHECK (checkout_session_id ~ '^[A-Za-z0-9-]{1,100}$'),  -- v2 orders
    charge_permission_id text,  -- once the checkout session completed; v1 orders: their order reference id
    payment_execution text   NOT NULL CHECK (payment_execution IN ('one_step', 'two_step')),
    status          text     NOT NULL CHECK (status IN ('pending', 'authorization_pending', 'authorized',
                        'authorization_expired', 'captured', 'invoiced', 'refunded', 'declined', 'cancelled', 'closed')),
    status_reason   text,
    gross_minor     bigint   NOT NULL CHECK (gross_minor > 0),
    bill_to         jsonb    NOT NULL,
    request_sha256  bytea    NOT NULL,
    charge_permission_state  text,  -- Chargeable, NonChargeable, Closed: as Amazon last said
    charge_permission_reason text,
    authorization_attempts smallint NOT NULL DEFAULT 0,  -- charges Kontor asked for outside invoices
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, business, order_ref),
    FOREIGN KEY (merchant_id, business) REFERENCES businesses (merchant_id, business),
    CONSTRAINT orders_amazon_reference CHECK (checkout_session_id IS NOT NULL OR charge_permission_id IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS orders_by_customer ON orders (merchant_id, business, customer);

CREATE TABLE IF NOT EXISTS order_items (
    merchant_id    bigint   NOT NULL,
    business       smallint NOT NULL,
    order_ref      text     NOT NULL,
    item_ref       integer  NOT NULL CHECK (item_ref BETWEEN 1 AND 999999),
    position_type  text     NOT NULL,
    description    text     NOT NULL,
    quantity       integer  NOT NULL CHECK (quantity BETWEEN 1 AND 1000000),
    gross_unit_minor bigint NOT NULL,
    vat_rate       numeric(5, 2) NOT NULL CHECK (vat_rate >= 0 AND vat_rate < 100),
    state          text     NOT NULL CHECK (state IN ('open', 'invoiced', 'cancelled')),
    invoice_ref    text,
    returned_qty   integer  NOT NULL DEFAULT 0 CHECK (returned_qty >= 0 AND returned_qty <= quantity),
    PRIMARY KEY (merchant_id, business, order_ref, item_ref),
    FOREIGN KEY (merchant_id, business, order_ref) REFERENCES orders (merchant_id, business, order_ref)
);

-- Invoices, cancellations, returns, goodwills, payments: one row per document, keyed by its reference,
-- with the request fingerprint (a retry replays the stored response, another body is refused).
CREATE TABLE IF NOT EXISTS order_documents (
    merchant_id    bigint   NOT NULL,
    business       smallint NOT NULL,
    order_ref      text     NOT NULL,
    kind           text     NOT NULL CHECK (kind IN ('invoice', 'cancellation', 'return', 'goodwill', 'payment')),
    ref            text     NOT NULL CHECK (ref ~ '^[A-Za-z0-9_./-]{1,32}$'),
    document_date  date     NOT NULL,
    gross_minor    bigint   NOT NULL CHECK (gross_minor >= 0),
    entry_id       bigint,
    details        jsonb    NOT NULL,
    response       jsonb    NOT NULL,
    request_sha256 bytea    NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, business, kind, ref),
    FOREIGN KEY (merchant_id, business, order_ref) REFERENCES orders (merchant_id, business, order_ref)
);
CREATE INDEX IF NOT EXISTS order_documents_by_order ON order_documents (merchant_id, business, order_ref);

-- The Amazon Pay mirror: charges and refunds with Amazon's states. A charge is an authorization and its
-- capture in one object (v2); a v1 order's open authorization and its completed captures are charges too
-- (Amazon's v2 manages them under their v1 ids).
CREATE TABLE IF NOT EXISTS amazon_charges (
    merchant_id      bigint   NOT NULL,
    business         smallint NOT NULL,
    order_ref        text     NOT NULL,
    charge_id        text     NOT NULL,
    charge_permission_id text NOT NULL,
    idempotency_key  text,              -- what Kontor created it with (NULL: created at checkout, or under v1)
    invoice_ref      text,              -- two-step: the invoice whose shipment it captured
    amount_minor     bigint   NOT NULL CHECK (amount_minor > 0),         -- chargeAmount
    captured_minor   bigint   NOT NULL DEFAULT 0 CHECK (captured_minor >= 0),  -- captureAmount, once Captured
    state            text     NOT NULL CHECK (state IN ('AuthorizationInitiated', 'Authorized', 'CaptureInitiated',
                                  'Captured', 'Canceled', 'Declined')),
    reason           text,
    expires_at       timestamptz,       -- an authorization is capturable until then (30 days)
    entry_id         bigint,            -- the booking Dr PSP / Cr AR, once Captured
    refunds_minor    bigint   NOT NULL DEFAULT 0 CHECK (refunds_minor >= 0),  -- requested + completed
    refund_count     integer  NOT NULL DEFAULT 0 CHECK (refund_count BETWEEN 0 AND 10),
    chargebacks_minor bigint  NOT NULL DEFAULT 0 CHECK (chargebacks_minor >= 0),
    settlement_id    text,              -- the settlement that reported it, once reconciled
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, charge_id),
    FOREIGN KEY (merchant_id, business, order_ref) REFERENCES orders (merchant_id, business, order_ref)
);
CREATE INDEX IF NOT EXISTS amazon_charges_by_order ON amazon_charges (merchant_id, business, order_ref);

CREATE TABLE IF NOT EXISTS amazon_refunds (
    merchant_id    bigint   NOT NULL,
    business       smallint NOT NULL,
    order_ref      text     NOT NULL,
    reference_id   text     NOT NULL CHECK (reference_id ~ '^[A-Za-z0-9_-]{1,32}$'),  -- Kontor's: <order>-r<n>
    refund_id      text,              -- Amazon's id, once the refund was requested there
    charge_id      text     NOT NULL,
    amount_minor   bigint   NOT NULL CHECK (amount_minor > 0),
    state          text     NOT NULL CHECK (state IN ('Requested', 'RefundInitiated', 'Refunded', 'Declined')),
    reason         text,
    source_kind    text     NOT NULL,
    source_ref     text     NOT NULL,
    entry_id       bigint,            -- the booking Dr AR / Cr PSP, once Refunded
    settlement_id  text,              -- the settlement that reported it, once reconciled
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, reference_id),
    CONSTRAINT amazon_refunds_charge FOREIGN KEY (merchant_id, charge_id) REFERENCES amazon_charges (merchant_id, charge_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS amazon_refunds_by_id ON amazon_refunds (merchant_id, refund_id)
    WHERE refund_id IS NOT NULL;

-- Two-step invoices: the capture Kontor asks Amazon for, recorded before the call. Its idempotency key derives
-- from (sequence, attempt), so the same request again is the same call at Amazon; the invoice is booked once,
-- after Amazon accepted the capture (by its answer, the retry, or the charge's IPN). A refusal books nothing;
-- the same request again is a new attempt. `items` are reserved while the capture is requested.
CREATE TABLE IF NOT EXISTS invoice_captures (
    merchant_id    bigint    NOT NULL,
    business       smallint  NOT NULL,
    order_ref      text      NOT NULL,
    invoice_ref    text      NOT NULL,
    sequence       integer   NOT NULL CHECK (sequence BETWEEN 1 AND 999),  -- the order's n-th invoice: key -i<n>
    attempt        smallint  NOT NULL DEFAULT 1 CHECK (attempt BETWEEN 1 AND 9),
    items          integer[] NOT NULL,
    amount_minor   bigint    NOT NULL CHECK (amount_minor > 0),
    body           jsonb     NOT NULL,   -- the invoice as requested: booked from it once the capture is accepted
    request_sha256 bytea     NOT NULL,
    charge_id      text,                 -- the authorization it captures, or its new charge once Amazon named it
    new_charge     boolean   NOT NULL,   -- a new charge on the charge permission (key -i<n>c) instead
    state          text      NOT NULL CHECK (state IN ('requested', 'booked', 'refused')),
    reason         text,                 -- Amazon's reasonCode of the last refusal
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, business, invoice_ref),
    UNIQUE (merchant_id, business, order_ref, sequence),
    FOREIGN KEY (merchant_id, business, order_ref) REFERENCES orders (merchant_id, business, order_ref)
);

-- Notifications to the merchant, written in the transaction of the booking that caused them.
CREATE TABLE IF NOT EXISTS outbox (
    merchant_id  bigint      NOT NULL,
    event_id     bigint      GENERATED ALWAYS AS IDENTITY,
    business     smallint,
    type         text        NOT NULL,
    payload      jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, event_id)
);

-- Amazon Pay IPNs exactly as received (raw SNS envelope), deduplicated by notification id. Each is applied
-- on its own: one that cannot be applied is retried with backoff (Amazon unreachable) or ignored with its
-- reason, and never holds up the ones behind it. `claimed_until` is a lease, not a lock held over the network.
CREATE TABLE IF NOT EXISTS ipn_messages (
    merchant_id       bigint      NOT NULL,
    notification_id   text        NOT NULL,
    seller_id         text        NOT NULL,  -- the Amazon merchant id the message names
    notification_type text        NOT NULL,  -- v2: the ObjectType (CHARGE, REFUND, CHARGE_PERMISSION, CHARGEBACK)
    raw               text        NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now(),
    attempts          integer     NOT NULL DEFAULT 0,
    processed_at      timestamptz,
    outcome           text,
    state             text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'processed', 'ignored')),
    object_id         text,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    claimed_until     timestamptz,
    last_error        text,
    PRIMARY KEY (merchant_id, notification_id)
);

-- Chargebacks (and A-to-z claims), booked once whether the IPN or the settlement reports them first.
-- chargeback_id is Amazon's dispute id (v2) or its v1 chargeback id.
CREATE TABLE IF NOT EXISTS chargebacks (
    merchant_id    bigint   NOT NULL,
    business       smallint NOT NULL,
    chargeback_id  text     NOT NULL,
    order_ref      text     NOT NULL,
    charge_id      text,
    kind           text     NOT NULL CHECK (kind IN ('chargeback', 'a-to-z')),
    amount_minor   bigint   NOT NULL CHECK (amount_minor > 0),
    reason         text,
    received_on    date     NOT NULL,
    entry_id       bigint   NOT NULL,
    settlement_id  text,               -- the settlement that debited it, once seen there
    reversal_settlement_id text,       -- the settlement that paid it back (representment won)
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, chargeback_id),
    FOREIGN KEY (merchant_id, business, order_ref) REFERENCES orders (merchant_id, business, order_ref)
);

CREATE TABLE IF NOT EXISTS disputes (
    merchant_id    bigint   NOT NULL,
    business       smallint NOT NULL,
    dispute_id     bigint   GENERATED ALWAYS AS IDENTITY,
    chargeback_id  text     NOT NULL,
    order_ref      text     NOT NULL,
    customer       text     NOT NULL,
    amount_minor   bigint   NOT NULL CHECK (amount_minor > 0),
    reason         text,
    opened_on      date     NOT NULL,
    deadline       date     NOT NULL,   -- Amazon's merchantResponseDeadline, else 11 days after it opened
    state          text     NOT NULL CHECK (state IN ('open', 'won', 'lost')),
    resolved_on    date,
    reversal_entry_id bigint,
    amazon_state   text,                -- UnderReview, ActionRequired, Resolved, Closed (v2 Dispute API)
    amazon_reason  text,
    resolution     text,                -- BuyerWon, MerchantWon, NoFault
    contested_at   timestamptz,         -- evidence submitted to Amazon
    PRIMARY KEY (merchant_id, dispute_id),
    UNIQUE (merchant_id, chargeback_id),
    FOREIGN KEY (merchant_id, chargeback_id) REFERENCES chargebacks (merchant_id, chargeback_id)
);

-- Evidence submitted to Amazon with a contest: Amazon's evidence type, a text or a file uploaded to Amazon
-- (its fileId; Kontor keeps the name, type, size and SHA-256, not the bytes).
CREATE TABLE IF NOT EXISTS dispute_evidence (
    merchant_id  bigint      NOT NULL,
    dispute_id   bigint      NOT NULL,
    evidence_id  bigint      GENERATED ALWAYS AS IDENTITY,
    kind         text        NOT NULL CHECK (kind IN ('ProductDescription', 'Receipt', 'CancellationPolicy',
                     'CustomerSignature', 'TrackingNumber', 'CarrierName', 'DeviceId', 'DeviceName',
                     'DownloadDateTime', 'Other')),
    content      text        CHECK (length(content) BETWEEN 1 AND 10000),
    file_name    text,
    file_type    text,
    file_bytes   integer,
    file_sha256  bytea,
    file_id      text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, dispute_id, evidence_id),
    FOREIGN KEY (merchant_id, dispute_id) REFERENCES disputes (merchant_id, dispute_id),
    CONSTRAINT dispute_evidence_content CHECK (content IS NOT NULL OR file_id IS NOT NULL)
);

-- Settlement reports (flat file), one per SettlementId; the rows are the reconciliation detail.
CREATE TABLE IF NOT EXISTS settlements (
    merchant_id    bigint      NOT NULL,
    business       smallint    NOT NULL,
    settlement_id  text        NOT NULL,
    file_sha256    bytea       NOT NULL,
    period_start   timestamptz,
    period_end     timestamptz,
    summary        jsonb       NOT NULL,
    imported_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, business, settlement_id),
    FOREIGN KEY (merchant_id, business) REFERENCES businesses (merchant_id, business)
);

CREATE TABLE IF NOT EXISTS settlement_rows (
    merchant_id     bigint   NOT NULL,
    business        smallint NOT NULL,
    settlement_id   text     NOT NULL,
    line_no         integer  NOT NULL,
    transaction_type text    NOT NULL,
    transaction_id  text     NOT NULL,
    seller_reference_id text NOT NULL,
    order_reference_id text  NOT NULL,
    description     text     NOT NULL,
    amount_minor    bigint   NOT NULL,  -- signed, the merchant's view (+ credited)
    fee_minor       bigint   NOT NULL,
    posted_on       date     NOT NULL,
    -- matched, booked, fee, reserve, payout, exception or empty
    outcome         text     NOT NULL,
    PRIMARY KEY (merchant_id, business, settlement_id, line_no)
);

-- Payouts to the bank (settlement Transfer rows) until a bank statement line clears them.
CREATE TABLE IF NOT EXISTS payouts (
    merchant_id    bigint   NOT NULL,
    business       smallint NOT NULL,
    settlement_id  text     NOT NULL,
    line_no        integer  NOT NULL,
    -- > 0 paid out to the bank; < 0 a balance repayment Amazon collects from the bank
    amount_minor   bigint   NOT NULL CONSTRAINT payouts_amount_minor_check CHECK (amount_minor <> 0),
    posted_on      date     NOT NULL,
    entry_id       bigint   NOT NULL,
    cleared_by     text,               -- statement id and line that cleared it
    clearing_entry_id bigint,
    PRIMARY KEY (merchant_id, business, settlement_id, line_no)
);
CREATE INDEX IF NOT EXISTS payouts_uncleared ON payouts (merchant_id, business, amount_minor) WHERE cleared_by IS NULL;

-- A bank statement is identified by its account, the bank's statement Id and its date (two accounts'
-- statements may share a short Id). file_sha256 fingerprints what the statement says (payments/camt.py).
CREATE TABLE IF NOT EXISTS bank_statements (
    merchant_id    bigint   NOT NULL,
    business       smallint NOT NULL,
    account        text     NOT NULL DEFAULT '',  -- IBAN or other account id; '' = imported before it was kept
    statement_id   text     NOT NULL,
    statement_on   date     NOT NULL,
    file_sha256    bytea    NOT NULL,
    summary        jsonb    NOT NULL,
    imported_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, business, account, statement_id, statement_on),
    FOREIGN KEY (merchant_id, business) REFERENCES businesses (merchant_id, business)
);

-- Payment references Kontor printed on a document (a dunning letter's ISO 11649 creditor reference): a bank
-- statement line naming one pays that customer's claims (payments/references.py).
CREATE TABLE IF NOT EXISTS payment_references (
    merchant_id    bigint   NOT NULL,
    business       smallint NOT NULL,
    reference      text     NOT NULL CHECK (reference ~ '^RF[0-9]{2}[0-9A-Z]{1,21}$'),
    customer       text     NOT NULL CHECK (length(customer) BETWEEN 1 AND 64),
    amount_minor   bigint   NOT NULL CHECK (amount_minor > 0),
    orders         text[]   NOT NULL DEFAULT '{}',
    source         text     NOT NULL CHECK (source ~ '^[a-z_]{1,32}:[0-9]{1,19}$'),  -- e.g. dunning_notice:42
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, business, reference),
    FOREIGN KEY (merchant_id, business) REFERENCES businesses (merchant_id, business)
);

-- What reconciliation could not match: parked in SUSPENSE until an accountant resolves or dismisses it.
CREATE TABLE IF NOT EXISTS reconciliation_exceptions (
    merchant_id     bigint   NOT NULL,
    business        smallint NOT NULL,
    exception_id    bigint   GENERATED ALWAYS AS IDENTITY,
    source          text     NOT NULL CHECK (source IN ('settlement', 'bank', 'dispute')),  -- dispute: an outcome Amazon contradicted
    source_ref      text     NOT NULL,
    line_no         integer  NOT NULL,
    kind            text     NOT NULL,
    description     text     NOT NULL,
    amount_minor    bigint   NOT NULL,  -- signed: > 0 was credited to SUSPENSE, < 0 debited
    suspense_entry_id bigint,
    state           text     NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'resolved', 'dismissed')),
    resolution      jsonb,
    resolution_entry_id bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, exception_id)
);
CREATE INDEX IF NOT EXISTS reconciliation_exceptions_open
    ON reconciliation_exceptions (merchant_id, business, state, exception_id);

-- Settlement reports listed by Amazon's Reporting API, fetched and imported once each by the job
-- `amazon-pay-reports` (a report that fails is retried with backoff and never holds up the others).
CREATE TABLE IF NOT EXISTS amazon_reports (
    merchant_id     bigint   NOT NULL,
    business        smallint NOT NULL,
    report_id       text     NOT NULL,
    report_type     text     NOT NULL,
    report_document_id text,
    created_time    timestamptz,
    period_start    timestamptz,
    period_end      timestamptz,
    state           text     NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'imported', 'failed')),
    settlement_id   text,               -- what it was imported as
    attempts        integer  NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    seen_at         timestamptz NOT NULL DEFAULT now(),
    imported_at     timestamptz,
    PRIMARY KEY (merchant_id, business, report_id),
    FOREIGN KEY (merchant_id, business) REFERENCES businesses (merchant_id, business)
);
CREATE INDEX IF NOT EXISTS amazon_reports_due ON amazon_reports (next_attempt_at) WHERE state = 'new';

-- Columns added after their tables first shipped (CREATE TABLE IF NOT EXISTS does not add them).
ALTER TABLE amazon_refunds ADD COLUMN IF NOT EXISTS settlement_id text;
ALTER TABLE chargebacks ADD COLUMN IF NOT EXISTS reversal_settlement_id text;
ALTER TABLE payouts DROP CONSTRAINT IF EXISTS payouts_amount_minor_check;
ALTER TABLE payouts ADD CONSTRAINT payouts_amount_minor_check CHECK (amount_minor <> 0);
ALTER TABLE amazon_pay_accounts ADD COLUMN IF NOT EXISTS proven_at timestamptz;
ALTER TABLE payouts ADD COLUMN IF NOT EXISTS disbursement_reference text;  -- Amazon's, printed on the bank statement
ALTER TABLE settlements ADD COLUMN IF NOT EXISTS report_id text;  -- fetched through the Reporting API (else uploaded)
ALTER TABLE settlements ADD COLUMN IF NOT EXISTS content_sha256 bytea;  -- its rows without the SettlementId (payments/settlement.py)
CREATE UNIQUE INDEX IF NOT EXISTS settlements_by_content ON settlements (merchant_id, business, content_sha256)
    WHERE content_sha256 IS NOT NULL;
CREATE INDEX IF NOT EXISTS settlement_rows_payouts ON settlement_rows (merchant_id, business, posted_on, amount_minor)
    WHERE transaction_type IN ('Transfer', 'Reserve');

-- Checkout v1 (MWS) to v2: settings, orders and the Amazon Pay mirror of a database that ran v1. A no-op on a
-- new database. v1 settings stay as 'v1' (MWS is gone: the merchant connects again with v2 keys, or its MWS auth
-- token is exchanged for a v2 token); a v1 authorization that was not captured and each v1 capture become
-- charges under their v1 ids, which Amazon's v2 API accepts.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
               AND table_name = 'amazon_pay_settings' AND column_name = 'seller_id') THEN
        ALTER TABLE amazon_pay_settings RENAME COLUMN seller_id TO amazon_merchant_id;
        ALTER TABLE amazon_pay_settings RENAME COLUMN mws_auth_token TO legacy_mws_auth_token;
        ALTER TABLE amazon_pay_settings RENAME CONSTRAINT amazon_pay_settings_seller_id_check
            TO amazon_pay_settings_amazon_merchant_id_check;
        ALTER TABLE amazon_pay_settings ALTER COLUMN legacy_mws_auth_token DROP NOT NULL,
            DROP CONSTRAINT IF EXISTS amazon_pay_settings_mws_auth_token_check,
            DROP CONSTRAINT IF EXISTS amazon_pay_settings_region_check,
            ADD COLUMN store_id text CHECK (store_id ~ '^amzn1\.application-oa2-client\.[0-9a-f]{32}$'),
            ADD COLUMN access text NOT NULL DEFAULT 'v1' CHECK (access IN ('keys', 'delegated', 'v1')),
            ADD COLUMN public_key_id text CHECK (public_key_id ~ '^[A-Za-z0-9_-]{8,100}$'),
            ADD COLUMN private_key_sealed text,
            ADD COLUMN auth_token_sealed text,
            ADD COLUMN verified_at timestamptz;
        ALTER TABLE amazon_pay_settings ALTER COLUMN access DROP DEFAULT;
        UPDATE amazon_pay_settings SET region = 'eu' WHERE region = 'uk';  -- v2 serves the UK from the EU host
        ALTER TABLE amazon_pay_settings ADD CONSTRAINT amazon_pay_settings_region_check
                CHECK (region IN ('na', 'eu', 'jp')),
            ADD CONSTRAINT amazon_pay_settings_keys
                CHECK (access <> 'keys' OR (public_key_id IS NOT NULL AND private_key_sealed IS NOT NULL)),
            ADD CONSTRAINT amazon_pay_settings_delegated CHECK (access <> 'delegated' OR auth_token_sealed IS NOT NULL);
        DROP INDEX IF EXISTS amazon_pay_settings_by_seller;
        -- the first business code to have connected an Amazon account keeps it
        INSERT INTO amazon_pay_accounts (amazon_merchant_id, merchant_id, business)
            SELECT DISTINCT ON (amazon_merchant_id) amazon_merchant_id, merchant_id, business
            FROM amazon_pay_settings ORDER BY amazon_merchant_id, updated_at, merchant_id, business
            ON CONFLICT DO NOTHING;
    END IF;
    IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
               AND table_name = 'orders' AND column_name = 'amazon_order_reference_id') THEN
        ALTER TABLE orders RENAME COLUMN amazon_order_reference_id TO charge_permission_id;
        ALTER TABLE orders RENAME COLUMN amazon_state TO charge_permission_state;
        ALTER TABLE orders RENAME COLUMN amazon_state_reason TO charge_permission_reason;
        DROP INDEX IF EXISTS orders_by_amazon_reference;
        ALTER TABLE orders ALTER COLUMN charge_permission_id DROP NOT NULL,
            DROP CONSTRAINT IF EXISTS orders_status_check,
            ADD COLUMN checkout_session_id text CHECK (checkout_session_id ~ '^[A-Za-z0-9-]{1,100}$'),
            ADD COLUMN authorization_attempts smallint NOT NULL DEFAULT 0,
            ADD CONSTRAINT orders_status_check CHECK (status IN ('pending', 'authorization_pending', 'authorized',
                'authorization_expired', 'captured', 'invoiced', 'refunded', 'declined', 'cancelled', 'closed')),
            ADD CONSTRAINT orders_amazon_reference
                CHECK (checkout_session_id IS NOT NULL OR charge_permission_id IS NOT NULL);
    END IF;
    IF to_regclass('amazon_captures') IS NOT NULL THEN
        INSERT INTO amazon_charges (merchant_id, business, order_ref, charge_id, charge_permission_id, amount_minor,
                captured_minor, state, reason, entry_id, refunds_minor, refund_count, chargebacks_minor, settlement_id,
                created_at)
            SELECT c.merchant_id, c.business, c.order_ref, c.capture_id, o.charge_permission_id, c.amount_minor,
                   CASE WHEN c.state IN ('Completed', 'Closed') THEN c.amount_minor ELSE 0 END,
                   CASE c.state WHEN 'Pending' THEN 'CaptureInitiated' WHEN 'Declined' THEN 'Declined' ELSE 'Captured' END,
                   c.reason, c.entry_id, c.refunds_minor, c.refund_count, c.chargebacks_minor, c.settlement_id, c.created_at
            FROM amazon_captures c JOIN orders o USING (merchant_id, business, order_ref)
            ON CONFLICT DO NOTHING;
        INSERT INTO amazon_charges (merchant_id, business, order_ref, charge_id, charge_permission_id, amount_minor,
                state, reason, expires_at, created_at)
            SELECT a.merchant_id, a.business, a.order_ref, a.authorization_id, o.charge_permission_id, a.amount_minor,
                   CASE a.state WHEN 'Open' THEN 'Authorized' WHEN 'Pending' THEN 'AuthorizationInitiated'
                                WHEN 'Declined' THEN 'Declined' ELSE 'Canceled' END,
                   a.reason, a.expires_at, a.created_at
            FROM amazon_authorizations a JOIN orders o USING (merchant_id, business, order_ref)
            WHERE NOT EXISTS (SELECT 1 FROM amazon_captures c WHERE c.merchant_id = a.merchant_id
                              AND c.authorization_id = a.authorization_id)
            ON CONFLICT DO NOTHING;
        ALTER TABLE amazon_refunds RENAME COLUMN capture_id TO charge_id;
        ALTER TABLE chargebacks RENAME COLUMN capture_id TO charge_id;
        DROP TABLE amazon_captures CASCADE;  -- with the refunds' foreign key to it
        DROP TABLE amazon_authorizations;
        DROP INDEX IF EXISTS amazon_refunds_requested;
        ALTER TABLE amazon_refunds DROP CONSTRAINT IF EXISTS amazon_refunds_state_check;
        UPDATE amazon_refunds SET state = CASE state WHEN 'Pending' THEN 'RefundInitiated'
                                                     WHEN 'Completed' THEN 'Refunded' ELSE state END;
        ALTER TABLE amazon_refunds ADD CONSTRAINT amazon_refunds_state_check
                CHECK (state IN ('Requested', 'RefundInitiated', 'Refunded', 'Declined')),
            ADD CONSTRAINT amazon_refunds_charge FOREIGN KEY (merchant_id, charge_id)
                REFERENCES amazon_charges (merchant_id, charge_id);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
                   AND table_name = 'ipn_messages' AND column_name = 'state') THEN
        ALTER TABLE ipn_messages
            ADD COLUMN state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'processed', 'ignored')),
            ADD COLUMN object_id text,
            ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
            ADD COLUMN claimed_until timestamptz,
            ADD COLUMN last_error text;
        UPDATE ipn_messages SET state = CASE WHEN outcome LIKE 'ignored%' THEN 'ignored' ELSE 'processed' END
            WHERE processed_at IS NOT NULL;
        DROP INDEX IF EXISTS ipn_messages_unprocessed;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
                   AND table_name = 'disputes' AND column_name = 'amazon_state') THEN
        ALTER TABLE disputes ADD COLUMN amazon_state text, ADD COLUMN amazon_reason text,
            ADD COLUMN resolution text, ADD COLUMN contested_at timestamptz;
        ALTER TABLE dispute_evidence DROP CONSTRAINT IF EXISTS dispute_evidence_kind_check,
            DROP CONSTRAINT IF EXISTS dispute_evidence_content_check,
            ALTER COLUMN content DROP NOT NULL,
            ADD COLUMN file_name text, ADD COLUMN file_type text, ADD COLUMN file_bytes integer,
            ADD COLUMN file_sha256 bytea, ADD COLUMN file_id text;
        UPDATE dispute_evidence SET kind = CASE kind WHEN 'invoice_copy' THEN 'Receipt'
            WHEN 'proof_of_delivery' THEN 'CustomerSignature' WHEN 'tracking_number' THEN 'TrackingNumber' ELSE 'Other' END;
        ALTER TABLE dispute_evidence ADD CONSTRAINT dispute_evidence_kind_check CHECK (kind IN ('ProductDescription',
                'Receipt', 'CancellationPolicy', 'CustomerSignature', 'TrackingNumber', 'CarrierName', 'DeviceId',
                'DeviceName', 'DownloadDateTime', 'Other')),
            ADD CONSTRAINT dispute_evidence_content_check CHECK (length(content) BETWEEN 1 AND 10000),
            ADD CONSTRAINT dispute_evidence_content CHECK (content IS NOT NULL OR file_id IS NOT NULL);
    END IF;
END $$;
-- PostgreSQL 18 names NOT NULL constraints after their column; a renamed column keeps the old name: rename those,
-- so an upgraded database has the catalogue of a new one (a no-op before PostgreSQL 18).
DO $$
DECLARE c record;
BEGIN
    FOR c IN SELECT con.conrelid::regclass AS tbl, con.conname, att.attname, rel.relname
             FROM pg_constraint con JOIN pg_class rel ON rel.oid = con.conrelid
             JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = con.conkey[1]
             WHERE con.contype = 'n' AND con.connamespace = current_schema()::regnamespace
               AND con.conname <> left(rel.relname || '_' || att.attname || '_not_null', 63)
    LOOP
        EXECUTE format('ALTER TABLE %s RENAME CONSTRAINT %I TO %I', c.tbl, c.conname,
                       left(c.relname || '_' || c.attname || '_not_null', 63));
    END LOOP;
END $$;
CREATE UNIQUE INDEX IF NOT EXISTS orders_by_checkout_session
    ON orders (merchant_id, business, checkout_session_id) WHERE checkout_session_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS orders_by_charge_permission
    ON orders (merchant_id, business, charge_permission_id) WHERE charge_permission_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS amazon_refunds_open ON amazon_refunds (merchant_id, state)
    WHERE state IN ('Requested', 'RefundInitiated');
CREATE INDEX IF NOT EXISTS ipn_messages_due ON ipn_messages (next_attempt_at) WHERE state = 'pending';
-- bank statements identified by account + Id + date instead of the Id alone: rows imported before keep
-- account '' and their import day (payments/bank.py then matches them by Id, as before)
ALTER TABLE bank_statements ADD COLUMN IF NOT EXISTS account text NOT NULL DEFAULT '';
ALTER TABLE bank_statements ADD COLUMN IF NOT EXISTS statement_on date;
UPDATE bank_statements SET statement_on = imported_at::date WHERE statement_on IS NULL;
ALTER TABLE bank_statements ALTER COLUMN statement_on SET NOT NULL;
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
        WHERE i.indrelid = 'bank_statements'::regclass AND i.indisprimary AND a.attname = 'statement_on'
    ) THEN
        ALTER TABLE bank_statements DROP CONSTRAINT bank_statements_pkey;
        ALTER TABLE bank_statements ADD PRIMARY KEY (merchant_id, business, account, statement_id, statement_on);
    END IF;
END $$;
-- the statement's sequence number and booked balances, for the balance checks (payments/bank.py): opening =
-- the previous statement's closing, opening + movements = closing, closing = the ledger's bank account
ALTER TABLE bank_statements ADD COLUMN IF NOT EXISTS sequence bigint;          -- ElctrncSeqNb, else LglSeqNb
ALTER TABLE bank_statements ADD COLUMN IF NOT EXISTS opening_minor bigint;     -- OPBD (else PRCD), signed
ALTER TABLE bank_statements ADD COLUMN IF NOT EXISTS closing_minor bigint;     -- CLBD, signed
ALTER TABLE bank_statements ADD COLUMN IF NOT EXISTS closing_on date;
ALTER TABLE bank_statements ADD COLUMN IF NOT EXISTS movements_minor bigint;   -- the booked lines' sum
CREATE INDEX IF NOT EXISTS bank_statements_in_sequence
    ON bank_statements (merchant_id, business, account, statement_on, sequence);

-- reconciliation exceptions of dispute outcomes Amazon contradicted (payments/disputes.py)
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'reconciliation_exceptions_source_check'
                   AND pg_get_constraintdef(oid) LIKE '%dispute%') THEN
        ALTER TABLE reconciliation_exceptions DROP CONSTRAINT IF EXISTS reconciliation_exceptions_source_check,
            ADD CONSTRAINT reconciliation_exceptions_source_check CHECK (source IN ('settlement', 'bank', 'dispute'));
    END IF;
END $$;

-- Webhooks: the merchant's callback URLs per notification type, and each event's delivery to each of them.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS dispatched_at timestamptz;  -- fanned out to deliveries
CREATE INDEX IF NOT EXISTS outbox_undispatched ON outbox (event_id) WHERE dispatched_at IS NULL;

CREATE TABLE IF NOT EXISTS notification_callbacks (
    merchant_id  bigint      NOT NULL REFERENCES merchants (merchant_id),
    callback_id  bigint      GENERATED ALWAYS AS IDENTITY,
    url          text        NOT NULL CHECK (length(url) BETWEEN 8 AND 2000),
    types        text[]      NOT NULL CHECK (cardinality(types) > 0),
    secret       text        NOT NULL,  -- HMAC-SHA256 signing key, shown to the merchant once
    active       boolean     NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, callback_id)
);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
    merchant_id     bigint      NOT NULL,
    delivery_id     bigint      GENERATED ALWAYS AS IDENTITY,
    event_id        bigint      NOT NULL,
    callback_id     bigint      NOT NULL,
    state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     integer,
    last_error      text,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, delivery_id),
    UNIQUE (merchant_id, event_id, callback_id),
    FOREIGN KEY (merchant_id, callback_id) REFERENCES notification_callbacks (merchant_id, callback_id)
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';

-- Dunning ------------------------------------------------------------------------------------------------
-- The German base rate (§247 BGB), effective-dated; an operator table shared by every merchant.
CREATE TABLE IF NOT EXISTS base_rates (
    valid_from  date         PRIMARY KEY,
    rate        numeric(6,3) NOT NULL CHECK (rate BETWEEN -10 AND 30),
    updated_at  timestamptz  NOT NULL DEFAULT now()
);
-- published by the Deutsche Bundesbank (half-yearly); later rates are added by the operator
INSERT INTO base_rates (valid_from, rate) VALUES
    ('2016-07-01', -0.88), ('2023-01-01', 1.62), ('2023-07-01', 3.12),
    ('2024-01-01', 3.62), ('2024-07-01', 3.37), ('2025-01-01', 2.27), ('2025-07-01', 1.27)
ON CONFLICT (valid_from) DO NOTHING;

CREATE TABLE IF NOT EXISTS dunning_policies (
    merchant_id     bigint   NOT NULL,
    business        smallint NOT NULL,
    policy          jsonb    NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, business),
    FOREIGN KEY (merchant_id, business) REFERENCES businesses (merchant_id, business)
);

-- A customer's place in dunning: level reached, when, default date, what was booked for fees and interest.
CREATE TABLE IF NOT EXISTS dunning_accounts (
    merchant_id     bigint   NOT NULL,
    business        smallint NOT NULL,
    customer        text     NOT NULL,
    level           smallint NOT NULL DEFAULT 0 CHECK (level BETWEEN 0 AND 4),
    last_notice_on  date,
    cycle_started_on date,              -- the first reminder of the current cycle (reset when all is paid)
    default_on      date,               -- in default from this day (the first reminder's pay-by date + 1)
    interest_minor  bigint   NOT NULL DEFAULT 0,  -- interest booked in this dunning cycle
    flat_fee_booked boolean  NOT NULL DEFAULT false,
    collection_status smallint CHECK (collection_status IN (90, 91, 95, 96, 97, 98, 99)),
    collection_since date,
    paused_until    date,               -- paused when set and >= today (9999-12-31: until resumed)
    pause_reason    text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, business, customer)
);

-- Items (orders) paused by the merchant: not counted as overdue while paused.
CREATE TABLE IF NOT EXISTS dunning_item_pauses (
    merchant_id   bigint   NOT NULL,
    business      smallint NOT NULL,
    order_ref     text     NOT NULL,
    until         date     NOT NULL,
    reason        text     NOT NULL,
    PRIMARY KEY (merchant_id, business, order_ref)
);

CREATE TABLE IF NOT EXISTS dunning_runs (
    merchant_id   bigint   NOT NULL,
    business      smallint NOT NULL,
    run_id        bigint   GENERATED ALWAYS AS IDENTITY,
    as_of         date     NOT NULL,
    trigger       text     NOT NULL CHECK (trigger IN ('schedule', 'api', 'cli')),
    state         text     NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    counts        jsonb    NOT NULL DEFAULT '{}',
    skipped       jsonb    NOT NULL DEFAULT '[]',  -- customers skipped and why (paused, disputed), first 1,000
    error         text,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    PRIMARY KEY (merchant_id, run_id)
);
-- one scheduled run per business code and day: the slot the instances compete for
CREATE UNIQUE INDEX IF NOT EXISTS dunning_runs_scheduled_slot
    ON dunning_runs (merchant_id, business, as_of) WHERE trigger = 'schedule';

CREATE TABLE IF NOT EXISTS dunning_notices (
    merchant_id   bigint   NOT NULL,
    business      smallint NOT NULL,
    notice_id     bigint   GENERATED ALWAYS AS IDENTITY,
    customer      text     NOT NULL,
    level         smallint NOT NULL CHECK (level BETWEEN 1 AND 4),
    issued_on     date     NOT NULL,
    pay_by        date     NOT NULL,
    items_key     text     NOT NULL,   -- the items it covers, for idempotency
    content       jsonb    NOT NULL,   -- level, items, amounts, pay-by date: the document is rendered from it
    run_id        bigint,
    entry_id      bigint,              -- fee, flat fee and interest, if any
    PRIMARY KEY (merchant_id, notice_id),
    UNIQUE (merchant_id, business, customer, level, items_key)
);

CREATE TABLE IF NOT EXISTS write_offs (
    merchant_id     bigint   NOT NULL,
    business        smallint NOT NULL,
    write_off_id    bigint   GENERATED ALWAYS AS IDENTITY,
    customer        text     NOT NULL,
    written_off_on  date     NOT NULL,
    reason          text     NOT NULL,
    costs_minor     bigint   NOT NULL,  -- fees and flat fees
    interest_minor  bigint   NOT NULL,
    principal_by_rate jsonb  NOT NULL,  -- {"19": gross minor, ...}; "none" for principal of no known rate
    entry_id        bigint   NOT NULL,
    recovered       jsonb    NOT NULL DEFAULT '{}',  -- what later payments recovered, same shape + costs/interest
    open_minor      bigint   NOT NULL CHECK (open_minor >= 0),  -- written off and not yet recovered
    PRIMARY KEY (merchant_id, write_off_id)
);
CREATE INDEX IF NOT EXISTS write_offs_recoverable
    ON write_offs (merchant_id, business, customer) WHERE open_minor > 0;
-- the principal per claim: [{"key", "order", "due", "by_rate": {"19": gross minor}}], so that a later payment
-- recovers the claim it names, else the oldest (dunning/recovery.py); NULL for write-offs from before
ALTER TABLE write_offs ADD COLUMN IF NOT EXISTS principal_by_order jsonb;

-- Collection agency cases: handed over after the final level (90 ready -> 91 transferred -> feedback).
CREATE TABLE IF NOT EXISTS collection_cases (
    merchant_id   bigint   NOT NULL,
    business      smallint NOT NULL,
    case_id       bigint   GENERATED ALWAYS AS IDENTITY,
    customer      text     NOT NULL,
    status        smallint NOT NULL CHECK (status IN (90, 91, 95, 96, 97, 98, 99)),
    amount_minor  bigint   NOT NULL,
    opened_on     date     NOT NULL,
    transferred_on date,
    closed_on     date,
    history       jsonb    NOT NULL DEFAULT '[]',
    PRIMARY KEY (merchant_id, case_id)
);
-- one open case per customer (ready, transferred, recalled or denied: not closed by 97, 98 or 99)
DROP INDEX IF EXISTS collection_cases_active;
CREATE UNIQUE INDEX IF NOT EXISTS collection_cases_open
    ON collection_cases (merchant_id, business, customer) WHERE status IN (90, 91, 95, 96);

-- Sessions of the accountant's web pages: the cookie holds "<merchant id>.<random token>", only its SHA-256
-- is stored. A session lives as long as its expiry and its API key (a revoked key ends its sessions at once).
CREATE TABLE IF NOT EXISTS web_sessions (
    merchant_id    bigint      NOT NULL,
    session_sha256 bytea       NOT NULL CHECK (length(session_sha256) = 32),
    key_id         bigint      NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, session_sha256),
    FOREIGN KEY (merchant_id, key_id) REFERENCES api_keys (merchant_id, key_id)
);
CREATE INDEX IF NOT EXISTS web_sessions_expiry ON web_sessions (expires_at);

-- DATEV export settings per business code (consultant and client numbers, fiscal year, account length).
CREATE TABLE IF NOT EXISTS datev_settings (
    merchant_id   bigint      NOT NULL,
    business      smallint    NOT NULL,
    settings      jsonb       NOT NULL CHECK (jsonb_typeof(settings) = 'object'),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, business),
    FOREIGN KEY (merchant_id, business) REFERENCES businesses (merchant_id, business)
);
