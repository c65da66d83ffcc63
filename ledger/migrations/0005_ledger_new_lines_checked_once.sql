-- Migration 0005, owned by ledger: kontor_check_new_lines looks each entry and each account up once per
-- statement instead of once per line (issue 15: a coalesced batch or a bulk posting names the same few accounts
-- thousands of times), and the entry is looked up by every column of entries_by_date as well as of the primary key
-- (with the statistics of an empty table the two indexes cost alike, and entries_by_date on three of its four
-- columns scanned every entry of the business code). The same checks and errors; a function only.

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
