-- Migration 0002, owned by payments: Amazon Pay v2 (Checkout v2) and the payments tables and columns added from
-- the 2026-11-27-checkout-v1 release to the first release with versioned migrations. Every statement is guarded
-- (IF NOT EXISTS, a DO block that looks first): databases of the releases between those two had some of these
-- changes and not others. The new tables come first: the Checkout v1 to v2 block below moves rows into them.

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

-- Columns added after their tables first shipped.
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
