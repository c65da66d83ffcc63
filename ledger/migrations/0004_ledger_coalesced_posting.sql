-- Migration 0004, owned by ledger: kontor_post_coalesced, the function that books the single-entry postings one
-- service process coalesced, in one call and one commit (issue 15; its description is beside it in schema.sql).
-- A new function only: no table changes.

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
