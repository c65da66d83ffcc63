-- Kontor schema: the whole current schema in one readable picture; the ledger's invariants live here, not only
-- in Python.
--
-- How it is applied (ledger/migrate.py): to an EMPTY database only, in one transaction under an advisory lock;
-- every migration in ledger/migrations/ is then recorded in schema_migrations as installed. A database that
-- exists is taken forward by those numbered migrations, never by this file: a change here comes with a migration
-- that makes the same change to a database of the release before (tests/integration/test_migrations.py installs
-- this file and migrates the oldest released schema, and compares the two catalogues).
--
-- Owners: each package owns a section of this file (its tables, indexes, functions and triggers), bottom-up in
-- the order of the layers: ledger, payments, dunning, desk. A section's SQL, and each package's SQL in Python,
-- touches only the tables and functions of its own section and of the sections before it
-- (tests/unit/test_sql_ownership.py).
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

-- ===================================================================================================
-- Section owned by ledger (ledger/): the journal, accounts, balances, the hash chain, API keys, the audit
-- trail, the business profile and export settings; the posting and period-close functions; schema bookkeeping.
-- ===================================================================================================
-- The migrations applied to this database (ledger/migrate.py): `installed` with schema.sql into an empty
-- database, or `migrated` into one that existed; sha256 is the file's, checked again at every start.
CREATE TABLE schema_migrations (
    version     integer     PRIMARY KEY CHECK (version >= 1),
    name        text        NOT NULL,
    sha256      text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    how         text        NOT NULL CHECK (how IN ('installed', 'migrated')),
    applied_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE merchants (
    merchant_id bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE businesses (
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

CREATE TABLE api_keys (
    merchant_id bigint      NOT NULL REFERENCES merchants (merchant_id),
    key_id      bigint      GENERATED ALWAYS AS IDENTITY,
    secret_sha256 bytea     NOT NULL CHECK (length(secret_sha256) = 32),
    role        text        NOT NULL CHECK (role IN ('accountant', 'poster', 'admin')),
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    PRIMARY KEY (merchant_id, key_id)
);

CREATE TABLE accounts (
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
CREATE UNIQUE INDEX accounts_role_key
    ON accounts (merchant_id, business, role) WHERE role IS NOT NULL;

CREATE SEQUENCE entry_id_seq AS bigint;

CREATE TABLE entries (
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
    -- the order it belongs to, beside its document number in `reference` (an invoice, credit note, goodwill or
    -- payment number): DATEV Belegfeld 2, and what dunning groups a customer's claims by
    order_reference text       CHECK (length(order_reference) BETWEEN 1 AND 200),
    PRIMARY KEY (merchant_id, business, entry_id),
    -- the business code is checked by entries_open_period (see "References on the posting path" below)
    FOREIGN KEY (merchant_id, business, reverses) REFERENCES entries (merchant_id, business, entry_id)
);
CREATE INDEX entries_by_date ON entries (merchant_id, business, effective_date, entry_id);
CREATE INDEX entries_by_reference
    ON entries (merchant_id, business, reference) WHERE reference IS NOT NULL;
CREATE INDEX entries_by_metadata
    ON entries USING gin (metadata jsonb_path_ops) WHERE metadata <> '{}';
CREATE UNIQUE INDEX entries_reversed_once
    ON entries (merchant_id, business, reverses) WHERE reverses IS NOT NULL;
CREATE INDEX entries_by_xid ON entries (xid, entry_id);
CREATE INDEX entries_by_order_reference
    ON entries (merchant_id, business, order_reference) WHERE order_reference IS NOT NULL;

-- The audit trail of actions that are not entries themselves (ledger/audit.py): who, when, why. Append-only.
CREATE TABLE audit_actions (
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
CREATE INDEX audit_actions_by_business ON audit_actions (merchant_id, business, action_id);

CREATE TABLE lines (
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
CREATE INDEX lines_register
    ON lines (merchant_id, business, account_id, effective_date, entry_id, line_no);
CREATE INDEX lines_by_customer
    ON lines (merchant_id, business, customer, effective_date, entry_id) WHERE customer IS NOT NULL;

-- Each account's whole-history sums per currency, spread over the same slots as balance_totals (no day):
-- what kontor_post_entries checks the account bound against (debits, and credits, at most 9 x 10^15 minor
-- units each), and what the overdraft guard reads, 16 rows per account whatever its history.
CREATE TABLE account_totals (
    merchant_id  bigint   NOT NULL,
    business     smallint NOT NULL,
    account_id   bigint   NOT NULL,
    currency     text     NOT NULL,
    slot         smallint NOT NULL CHECK (slot >= 0),
    debit_minor  bigint   NOT NULL CHECK (debit_minor >= 0),
    credit_minor bigint   NOT NULL CHECK (credit_minor >= 0),
    PRIMARY KEY (merchant_id, business, account_id, currency, slot)
);

CREATE TABLE balance_totals (
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
CREATE INDEX balance_totals_to_compact ON balance_totals (day) WHERE slot <> 0;

CREATE TABLE idempotency_keys (
    merchant_id  bigint      NOT NULL,
    idem_key     text        NOT NULL CHECK (length(idem_key) BETWEEN 1 AND 255),
    request_sha256 bytea     NOT NULL CHECK (length(request_sha256) = 32),
    business     smallint    NOT NULL,
    entry_ids    bigint[]    NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, idem_key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

CREATE TABLE period_closes (
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
CREATE TABLE chain_links (
    merchant_id bigint   NOT NULL,
    business    smallint NOT NULL,
    seq         bigint   NOT NULL CHECK (seq >= 1),
    entry_id    bigint   NOT NULL,
    link_sha256 bytea    NOT NULL CHECK (length(link_sha256) = 32),
    PRIMARY KEY (merchant_id, business, seq),
    UNIQUE (merchant_id, business, entry_id)
);

CREATE TABLE chain_heads (
    merchant_id bigint   NOT NULL,
    business    smallint NOT NULL,
    seq         bigint   NOT NULL,
    link_sha256 bytea    NOT NULL,
    PRIMARY KEY (merchant_id, business),
    FOREIGN KEY (merchant_id, business) REFERENCES businesses (merchant_id, business)
);

-- Operator-level: how far the chainer has looked (all transactions below this xid are finished).
CREATE TABLE chain_watermark (
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
-- the same business code. Each entry and each account is looked up once, however many lines name it (a
-- coalesced batch or a bulk posting names the same few accounts thousands of times); the entry by every column
-- of both its unique-enough indexes, so that neither plan scans (with empty-table statistics they cost alike).
CREATE OR REPLACE FUNCTION kontor_check_new_lines() RETURNS trigger
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE v_id bigint;
BEGIN
    SELECT l.entry_id INTO v_id
      FROM (SELECT DISTINCT merchant_id, business, entry_id, effective_date FROM new_lines) l
     WHERE (SELECT e.xid = pg_current_xact_id()
              FROM entries e
             WHERE e.merchant_id = l.merchant_id AND e.business = l.business AND e.effective_date = l.effective_date
               AND e.entry_id = l.entry_id) IS NOT TRUE
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'lines of entry % must be inserted with the entry and carry its date', v_id
            USING ERRCODE = 'KN100';
    END IF;
    SELECT l.account_id INTO v_id
      FROM (SELECT DISTINCT merchant_id, business, account_id FROM new_lines) l
     WHERE NOT EXISTS (SELECT 1 FROM accounts a
                        WHERE a.merchant_id = l.merchant_id AND a.business = l.business
                          AND a.account_id = l.account_id)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'account % does not exist in this business code', v_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
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
-- Coalesced posting (ledger/journal.py, ledger/coalesce.py): single-entry requests that one service process
-- received within a short window, of any merchants, in one round trip and one commit. Each request keeps its
-- own outcome. First all requests are inserted together (one statement per table, so the statement triggers
-- run once per batch), in a subtransaction; when that fails (a closed period, a known or repeated idempotency
-- key, an unknown account), it is rolled back and each request runs in a subtransaction of its own (an
-- exception block): one request's refusal rolls back that request only and is returned as its sqlstate,
-- message, detail and constraint, and the caller answers it on its own. The balance sums of the requests
-- booked are added once per row, after that, into one slot (p_slot), account_totals before balance_totals,
-- each in key order: every posting locks those rows in the same global order (no lock cycles). Requests
-- posting to accounts that may not go negative are never sent here (kontor_post_entries takes them).
--   p_requests [{"q": request index 0..n-1, "m": merchant, "b": business code, "key": idempotency key,
--                "sha": request sha256 as hex, "e": [its one entry], "l": its lines}, ...] (entries and lines
--               as for kontor_post_entries)
-- Returns per request either its entry id (replayed = true when its key was known, also from an earlier
-- request of the same call), or one row with the error (entry_id NULL, sqlstate set). When the account bound
-- is exceeded the whole call fails (KN004) and nothing is booked: the caller then posts the requests one by one.
-- ---------------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION kontor_post_coalesced(p_slot smallint, p_requests jsonb)
RETURNS TABLE (request int, entry_id bigint, recorded_at timestamptz, replayed boolean, request_sha256 bytea,
               sqlstate text, message text, detail text, constraint_name text)
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    r record;
    v_ids bigint[];
    v_known record;
    v_count int;
    v_booked int[] := '{}';
    v_merchants bigint[];
    v_businesses smallint[];
    v_accounts bigint[];
    v_currencies text[];
    v_guard record;
    v_state text;
    v_message text;
    v_detail text;
    v_constraint text;
BEGIN
    -- all together, unless a key is known or repeated: then (or when this fails) one by one
    v_count := jsonb_array_length(p_requests);
    IF NOT EXISTS (SELECT 1 FROM jsonb_array_elements(p_requests) AS req(j)
                    WHERE req.j->>'key' IS NOT NULL
                    GROUP BY req.j->>'m', req.j->>'key' HAVING count(*) > 1)
       AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(p_requests) AS req(j) WHERE jsonb_array_length(req.j->'e') <> 1)
       AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(p_requests) AS req(j) JOIN idempotency_keys k
                         ON k.merchant_id = (req.j->>'m')::bigint AND k.idem_key = req.j->>'key') THEN
        BEGIN
            v_ids := ARRAY(SELECT nextval('entry_id_seq') FROM generate_series(1, v_count));
            INSERT INTO entries (merchant_id, business, entry_id, effective_date, description, reference,
                                 metadata, reverses, content_sha256, posted_by, order_reference)
            SELECT (req.j->>'m')::bigint, (req.j->>'b')::smallint, v_ids[(req.j->>'q')::int + 1], x.d, x.t, x.r,
                   COALESCE(x.m, '{}'), x.v, decode(x.h, 'hex'), x.k, x.o
              FROM jsonb_array_elements(p_requests) AS req(j),
                   jsonb_to_recordset(req.j->'e') AS x(d date, t text, r text, m jsonb, v bigint, h text, k bigint, o text);
            INSERT INTO lines (merchant_id, business, entry_id, line_no, account_id, customer, side,
                               amount_minor, currency, effective_date)
            SELECT (req.j->>'m')::bigint, (req.j->>'b')::smallint, v_ids[(req.j->>'q')::int + 1], l.n, l.a, l.c, l.s,
                   l.x, l.k, l.d
              FROM jsonb_array_elements(p_requests) AS req(j),
                   jsonb_to_recordset(req.j->'l') AS l(n smallint, d date, a bigint, c text, s text, x bigint, k text);
            INSERT INTO idempotency_keys (merchant_id, idem_key, request_sha256, business, entry_ids)
            SELECT (req.j->>'m')::bigint, req.j->>'key', decode(req.j->>'sha', 'hex'), (req.j->>'b')::smallint,
                   ARRAY[v_ids[(req.j->>'q')::int + 1]]
              FROM jsonb_array_elements(p_requests) AS req(j)
             WHERE req.j->>'key' IS NOT NULL;
            v_booked := ARRAY(SELECT generate_series(0, v_count - 1));
        EXCEPTION WHEN OTHERS THEN
            v_booked := '{}';
        END;
    END IF;

    IF cardinality(v_booked) > 0 THEN
        -- recorded_at defaults to now(), the transaction's start time, the same for every entry here
        RETURN QUERY SELECT (req.j->>'q')::int, v_ids[(req.j->>'q')::int + 1], now(), false, decode(req.j->>'sha', 'hex'),
                            NULL::text, NULL::text, NULL::text, NULL::text
                       FROM jsonb_array_elements(p_requests) AS req(j);
    ELSE
        FOR r IN SELECT (req.j->>'q')::int AS q, (req.j->>'m')::bigint AS m, (req.j->>'b')::smallint AS b,
                        req.j->>'key' AS idem, decode(req.j->>'sha', 'hex') AS sha, req.j->'e' AS e, req.j->'l' AS l
                   FROM jsonb_array_elements(p_requests) AS req(j) LOOP
            IF r.idem IS NOT NULL THEN
                SELECT k.entry_ids, k.request_sha256 INTO v_known
                  FROM idempotency_keys k WHERE k.merchant_id = r.m AND k.idem_key = r.idem;
                IF FOUND THEN
                    RETURN QUERY SELECT r.q, unnest(v_known.entry_ids), NULL::timestamptz, true, v_known.request_sha256,
                                        NULL::text, NULL::text, NULL::text, NULL::text;
                    CONTINUE;
                END IF;
            END IF;
            BEGIN
                v_ids := ARRAY(SELECT nextval('entry_id_seq') FROM generate_series(1, jsonb_array_length(r.e)));
                INSERT INTO entries (merchant_id, business, entry_id, effective_date, description, reference,
                                     metadata, reverses, content_sha256, posted_by, order_reference)
                SELECT r.m, r.b, v_ids[x.i], x.d, x.t, x.r, COALESCE(x.m, '{}'), x.v, decode(x.h, 'hex'), x.k, x.o
                  FROM jsonb_to_recordset(r.e)
                    AS x(i int, d date, t text, r text, m jsonb, v bigint, h text, k bigint, o text);
                INSERT INTO lines (merchant_id, business, entry_id, line_no, account_id, customer, side,
                                   amount_minor, currency, effective_date)
                SELECT r.m, r.b, v_ids[l.e], l.n, l.a, l.c, l.s, l.x, l.k, l.d
                  FROM jsonb_to_recordset(r.l) AS l(e int, n smallint, d date, a bigint, c text, s text, x bigint, k text);
                IF r.idem IS NOT NULL THEN
                    INSERT INTO idempotency_keys (merchant_id, idem_key, request_sha256, business, entry_ids)
                    VALUES (r.m, r.idem, r.sha, r.b, v_ids);
                END IF;
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                                        v_detail = PG_EXCEPTION_DETAIL, v_constraint = CONSTRAINT_NAME;
                RETURN QUERY SELECT r.q, NULL::bigint, NULL::timestamptz, false, NULL::bytea,
                                    v_state, v_message, NULLIF(v_detail, ''), NULLIF(v_constraint, '');
                CONTINUE;
            END;
            v_booked := v_booked || r.q;
            -- recorded_at defaults to now(), the transaction's start time, the same for every entry here
            RETURN QUERY SELECT r.q, unnest(v_ids), now(), false, r.sha, NULL::text, NULL::text, NULL::text, NULL::text;
        END LOOP;
    END IF;

    IF cardinality(v_booked) = 0 THEN
        RETURN;
    END IF;

    -- the sums of the booked requests' lines, once per row: account_totals first, then balance_totals
    WITH booked AS (
        SELECT (req.j->>'m')::bigint AS m, (req.j->>'b')::smallint AS b, l.a, l.k, l.d, l.s, l.x
          FROM jsonb_array_elements(p_requests) AS req(j),
               jsonb_to_recordset(req.j->'l') AS l(a bigint, k text, d date, s text, x bigint)
         WHERE (req.j->>'q')::int = ANY (v_booked)),
    by_day AS (
        INSERT INTO balance_totals AS t (merchant_id, business, account_id, currency, day, slot,
                                         debit_minor, credit_minor)
        SELECT m, b, a, k, d, p_slot,
               COALESCE(sum(x) FILTER (WHERE s = 'D'), 0), COALESCE(sum(x) FILTER (WHERE s = 'C'), 0)
          FROM booked
         GROUP BY m, b, a, k, d
         ORDER BY m, b, a, k, d
        ON CONFLICT (merchant_id, business, account_id, currency, day, slot) DO UPDATE
           SET debit_minor = t.debit_minor + excluded.debit_minor,
               credit_minor = t.credit_minor + excluded.credit_minor),
    touched AS (
        INSERT INTO account_totals AS a (merchant_id, business, account_id, currency, slot, debit_minor, credit_minor)
        SELECT m, b, a, k, p_slot,
               COALESCE(sum(x) FILTER (WHERE s = 'D'), 0), COALESCE(sum(x) FILTER (WHERE s = 'C'), 0)
          FROM booked
         GROUP BY m, b, a, k
         ORDER BY m, b, a, k
        ON CONFLICT (merchant_id, business, account_id, currency, slot) DO UPDATE
           SET debit_minor = a.debit_minor + excluded.debit_minor,
               credit_minor = a.credit_minor + excluded.credit_minor
        RETURNING merchant_id, business, account_id, currency)
    SELECT array_agg(merchant_id), array_agg(business), array_agg(account_id), array_agg(currency)
      INTO v_merchants, v_businesses, v_accounts, v_currencies FROM touched;

    -- the account bound (ledger/money.py ACCOUNT_TOTAL_MINOR_MAX), as in kontor_post_entries
    SELECT u.account_id, u.currency INTO v_guard
      FROM unnest(v_merchants, v_businesses, v_accounts, v_currencies) AS u(merchant_id, business, account_id, currency)
      JOIN account_totals a
        ON a.merchant_id = u.merchant_id AND a.business = u.business AND a.account_id = u.account_id
       AND a.currency = u.currency
     GROUP BY u.merchant_id, u.business, u.account_id, u.currency
    HAVING sum(a.debit_minor) > 9000000000000000 OR sum(a.credit_minor) > 9000000000000000
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'account % would exceed its total in %', v_guard.account_id, v_guard.currency
            USING ERRCODE = 'KN004', DETAIL = v_guard.account_id::text;
    END IF;
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
CREATE TABLE business_profiles (
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

-- DATEV export settings per business code (consultant and client numbers, fiscal year, account length).
CREATE TABLE datev_settings (
    merchant_id   bigint      NOT NULL,
    business      smallint    NOT NULL,
    settings      jsonb       NOT NULL CHECK (jsonb_typeof(settings) = 'object'),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, business),
    FOREIGN KEY (merchant_id, business) REFERENCES businesses (merchant_id, business)
);

-- ===================================================================================================
-- Section owned by payments (payments/): Amazon Pay settings, orders and their documents, the Amazon Pay
-- mirror, IPNs, settlements, bank statements, reconciliation, notifications to the merchant (outbox, webhooks).
-- Business records, mutable where their state changes; every booking they cause is a journal entry.
-- Amazon Pay means the API v2 (Checkout v2); Checkout v1 (MWS) ended on 31 March 2026. Orders created
-- under v1 are kept and managed through v2 (the v1 order reference id is their charge permission id).
-- ===================================================================================================
CREATE TABLE amazon_pay_settings (
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
CREATE TABLE amazon_pay_accounts (
    amazon_merchant_id text     PRIMARY KEY,
    merchant_id        bigint   NOT NULL,
    business           smallint NOT NULL,
    claimed_at         timestamptz NOT NULL DEFAULT now(),
    proven_at          timestamptz
);

CREATE TABLE orders (
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
CREATE INDEX orders_by_customer ON orders (merchant_id, business, customer);
CREATE UNIQUE INDEX orders_by_checkout_session
    ON orders (merchant_id, business, checkout_session_id) WHERE checkout_session_id IS NOT NULL;
CREATE UNIQUE INDEX orders_by_charge_permission
    ON orders (merchant_id, business, charge_permission_id) WHERE charge_permission_id IS NOT NULL;

CREATE TABLE order_items (
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
CREATE TABLE order_documents (
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
CREATE INDEX order_documents_by_order ON order_documents (merchant_id, business, order_ref);

-- The Amazon Pay mirror: charges and refunds with Amazon's states. A charge is an authorization and its
-- capture in one object (v2); a v1 order's open authorization and its completed captures are charges too
-- (Amazon's v2 manages them under their v1 ids).
CREATE TABLE amazon_charges (
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
CREATE INDEX amazon_charges_by_order ON amazon_charges (merchant_id, business, order_ref);

CREATE TABLE amazon_refunds (
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
CREATE UNIQUE INDEX amazon_refunds_by_id ON amazon_refunds (merchant_id, refund_id)
    WHERE refund_id IS NOT NULL;
CREATE INDEX amazon_refunds_open ON amazon_refunds (merchant_id, state)
    WHERE state IN ('Requested', 'RefundInitiated');

-- Two-step invoices: the capture Kontor asks Amazon for, recorded before the call. Its idempotency key derives
-- from (sequence, attempt), so the same request again is the same call at Amazon; the invoice is booked once,
-- after Amazon accepted the capture (by its answer, the retry, or the charge's IPN). A refusal books nothing;
-- the same request again is a new attempt. `items` are reserved while the capture is requested.
CREATE TABLE invoice_captures (
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
CREATE TABLE outbox (
    merchant_id  bigint      NOT NULL,
    event_id     bigint      GENERATED ALWAYS AS IDENTITY,
    business     smallint,
    type         text        NOT NULL,
    payload      jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz,  -- fanned out to deliveries (webhook_deliveries)
    PRIMARY KEY (merchant_id, event_id)
);
CREATE INDEX outbox_undispatched ON outbox (event_id) WHERE dispatched_at IS NULL;

-- Amazon Pay IPNs exactly as received (raw SNS envelope), deduplicated by notification id. Each is applied
-- on its own: one that cannot be applied is retried with backoff (Amazon unreachable) or ignored with its
-- reason, and never holds up the ones behind it. `claimed_until` is a lease, not a lock held over the network.
CREATE TABLE ipn_messages (
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
CREATE INDEX ipn_messages_due ON ipn_messages (next_attempt_at) WHERE state = 'pending';

-- Chargebacks (and A-to-z claims), booked once whether the IPN or the settlement reports them first.
-- chargeback_id is Amazon's dispute id (v2) or its v1 chargeback id.
CREATE TABLE chargebacks (
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

CREATE TABLE disputes (
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
CREATE TABLE dispute_evidence (
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
CREATE TABLE settlements (
    merchant_id    bigint      NOT NULL,
    business       smallint    NOT NULL,
    settlement_id  text        NOT NULL,
    file_sha256    bytea       NOT NULL,
    period_start   timestamptz,
    period_end     timestamptz,
    summary        jsonb       NOT NULL,
    imported_at    timestamptz NOT NULL DEFAULT now(),
    report_id      text,       -- fetched through the Reporting API (else uploaded)
    content_sha256 bytea,      -- its rows without the SettlementId (payments/settlement.py)
    PRIMARY KEY (merchant_id, business, settlement_id),
    FOREIGN KEY (merchant_id, business) REFERENCES businesses (merchant_id, business)
);
CREATE UNIQUE INDEX settlements_by_content ON settlements (merchant_id, business, content_sha256)
    WHERE content_sha256 IS NOT NULL;

CREATE TABLE settlement_rows (
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
CREATE INDEX settlement_rows_payouts ON settlement_rows (merchant_id, business, posted_on, amount_minor)
    WHERE transaction_type IN ('Transfer', 'Reserve');

-- Payouts to the bank (settlement Transfer rows) until a bank statement line clears them.
CREATE TABLE payouts (
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
    disbursement_reference text,  -- Amazon's, printed on the bank statement
    PRIMARY KEY (merchant_id, business, settlement_id, line_no)
);
CREATE INDEX payouts_uncleared ON payouts (merchant_id, business, amount_minor) WHERE cleared_by IS NULL;

-- A bank statement is identified by its account, the bank's statement Id and its date (two accounts'
-- statements may share a short Id). file_sha256 fingerprints what the statement says (payments/camt.py).
CREATE TABLE bank_statements (
    merchant_id    bigint   NOT NULL,
    business       smallint NOT NULL,
    account        text     NOT NULL DEFAULT '',  -- IBAN or other account id; '' = imported before it was kept
    statement_id   text     NOT NULL,
    statement_on   date     NOT NULL,
    file_sha256    bytea    NOT NULL,
    summary        jsonb    NOT NULL,
    imported_at    timestamptz NOT NULL DEFAULT now(),
    -- the statement's sequence number and booked balances, for the balance checks (payments/bank.py): opening =
    -- the previous statement's closing, opening + movements = closing, closing = the ledger's bank account
    sequence       bigint,     -- ElctrncSeqNb, else LglSeqNb
    opening_minor  bigint,     -- OPBD (else PRCD), signed
    closing_minor  bigint,     -- CLBD, signed
    closing_on     date,
    movements_minor bigint,    -- the booked lines' sum
    PRIMARY KEY (merchant_id, business, account, statement_id, statement_on),
    FOREIGN KEY (merchant_id, business) REFERENCES businesses (merchant_id, business)
);
CREATE INDEX bank_statements_in_sequence
    ON bank_statements (merchant_id, business, account, statement_on, sequence);

-- Payment references Kontor printed on a document (a dunning letter's ISO 11649 creditor reference): a bank
-- statement line naming one pays that customer's claims (payments/references.py).
CREATE TABLE payment_references (
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
CREATE TABLE reconciliation_exceptions (
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
CREATE INDEX reconciliation_exceptions_open
    ON reconciliation_exceptions (merchant_id, business, state, exception_id);

-- Settlement reports listed by Amazon's Reporting API, fetched and imported once each by the job
-- `amazon-pay-reports` (a report that fails is retried with backoff and never holds up the others).
CREATE TABLE amazon_reports (
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
CREATE INDEX amazon_reports_due ON amazon_reports (next_attempt_at) WHERE state = 'new';

-- Webhooks: the merchant's callback URLs per notification type, and each event's delivery to each of them.
CREATE TABLE notification_callbacks (
    merchant_id  bigint      NOT NULL REFERENCES merchants (merchant_id),
    callback_id  bigint      GENERATED ALWAYS AS IDENTITY,
    url          text        NOT NULL CHECK (length(url) BETWEEN 8 AND 2000),
    types        text[]      NOT NULL CHECK (cardinality(types) > 0),
    secret       text        NOT NULL,  -- HMAC-SHA256 signing key, shown to the merchant once
    active       boolean     NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, callback_id)
);

CREATE TABLE webhook_deliveries (
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
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';

-- ===================================================================================================
-- Section owned by dunning (dunning/): policies, each customer's place in dunning, runs, notices,
-- write-offs and their recovery, collection agency cases, the base rate.
-- ===================================================================================================
-- The German base rate (§247 BGB), effective-dated; an operator table shared by every merchant.
CREATE TABLE base_rates (
    valid_from  date         PRIMARY KEY,
    rate        numeric(6,3) NOT NULL CHECK (rate BETWEEN -10 AND 30),
    updated_at  timestamptz  NOT NULL DEFAULT now()
);
-- published by the Deutsche Bundesbank (half-yearly); later rates are added by the operator
INSERT INTO base_rates (valid_from, rate) VALUES
    ('2016-07-01', -0.88), ('2023-01-01', 1.62), ('2023-07-01', 3.12),
    ('2024-01-01', 3.62), ('2024-07-01', 3.37), ('2025-01-01', 2.27), ('2025-07-01', 1.27)
ON CONFLICT (valid_from) DO NOTHING;

CREATE TABLE dunning_policies (
    merchant_id     bigint   NOT NULL,
    business        smallint NOT NULL,
    policy          jsonb    NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, business),
    FOREIGN KEY (merchant_id, business) REFERENCES businesses (merchant_id, business)
);

-- A customer's place in dunning: level reached, when, default date, what was booked for fees and interest.
CREATE TABLE dunning_accounts (
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
CREATE TABLE dunning_item_pauses (
    merchant_id   bigint   NOT NULL,
    business      smallint NOT NULL,
    order_ref     text     NOT NULL,
    until         date     NOT NULL,
    reason        text     NOT NULL,
    PRIMARY KEY (merchant_id, business, order_ref)
);

CREATE TABLE dunning_runs (
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
CREATE UNIQUE INDEX dunning_runs_scheduled_slot
    ON dunning_runs (merchant_id, business, as_of) WHERE trigger = 'schedule';

CREATE TABLE dunning_notices (
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

CREATE TABLE write_offs (
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
    -- the principal per claim: [{"key", "order", "due", "by_rate": {"19": gross minor}}], so that a later payment
    -- recovers the claim it names, else the oldest (dunning/recovery.py); NULL for write-offs from before
    principal_by_order jsonb,
    PRIMARY KEY (merchant_id, write_off_id)
);
CREATE INDEX write_offs_recoverable
    ON write_offs (merchant_id, business, customer) WHERE open_minor > 0;

-- Collection agency cases: handed over after the final level (90 ready -> 91 transferred -> feedback).
CREATE TABLE collection_cases (
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
CREATE UNIQUE INDEX collection_cases_open
    ON collection_cases (merchant_id, business, customer) WHERE status IN (90, 91, 95, 96);

-- ===================================================================================================
-- Section owned by desk (desk/): the accountant's web pages.
-- ===================================================================================================
-- Sessions of the accountant's web pages: the cookie holds "<merchant id>.<random token>", only its SHA-256
-- is stored. A session lives as long as its expiry and its API key (a revoked key ends its sessions at once).
CREATE TABLE web_sessions (
    merchant_id    bigint      NOT NULL,
    session_sha256 bytea       NOT NULL CHECK (length(session_sha256) = 32),
    key_id         bigint      NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, session_sha256),
    FOREIGN KEY (merchant_id, key_id) REFERENCES api_keys (merchant_id, key_id)
);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);
