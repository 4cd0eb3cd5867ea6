-- crm.root in PL/pgSQL. As an SQL function with a recursive query it could
-- not be inlined, and PostgreSQL planned its body again at every call
-- (an SQL function's plan lives only as long as the statement calling it):
-- about a tenth of a millisecond per call, on every event identity
-- resolves. PL/pgSQL keeps its plans for the session, and the common
-- case, a customer never merged, is one primary-key read.
CREATE OR REPLACE FUNCTION crm.root(customer uuid) RETURNS uuid
LANGUAGE plpgsql STABLE AS $$
DECLARE
    cur  uuid := customer;
    next uuid;
BEGIN
    -- merges of merges make chains; 64 steps is far past any real one and
    -- stops a corrupted loop
    FOR depth IN 0 .. 64 LOOP
        SELECT c.merged_into INTO next FROM crm.customers c WHERE c.id = cur;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        IF next IS NULL THEN
            RETURN cur;
        END IF;
        cur := next;
    END LOOP;
    RETURN NULL;
END
$$;
