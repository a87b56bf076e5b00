-- Sign-in throttling (issue #17), replacing the account lockout of 0002. The lockout read
-- `credentials.failed_attempts` before the password check and wrote it after, so parallel
-- guesses were all checked before it took; it let anyone lock a known account out; and a
-- locked account answered differently (and faster) than an unknown email.
--
-- One row per throttled key. Keys are HMAC-SHA256(SECRET_KEY, '<kind>:<value>') of the
-- kinds `account` (the lower-cased email, whether it exists or not), `client` (the client
-- address) and `device` (the id in a signed device cookie), so the table holds no email or
-- address. The rows are not history: deleting one unblocks its key at once, and rows idle
-- for longer than the reset time are deleted as they are met.
CREATE TABLE login_throttle (
    key             bytea       PRIMARY KEY,
    -- Attempts since the counter last started from zero. An attempt counts when it takes its
    -- slot, before the password is checked; a success resets or gives back its own slot.
    failures        integer     NOT NULL CHECK (failures >= 0),
    last_attempt_at timestamptz NOT NULL
);
CREATE INDEX login_throttle_last_attempt_idx ON login_throttle (last_attempt_at);

-- Takes a sign-in slot on every key at once, or on none: NULL when taken, else the seconds
-- until one would be free. Key i allows an attempt while its failures are under limits[i],
-- and after that once `base_secs * 2^(failures - limit)` (at most `max_secs`) have passed
-- since its last attempt; a counter idle for `idle_secs` counts as zero. The numbers come
-- from the caller (`pettycash_commands::throttle`), which owns them.
--
-- One statement, so that concurrent attempts on a key, from any number of processes, queue on
-- its row lock: at most `limit` of them are let through before the delay applies. All keys or
-- none: an attempt refused by one key must not use up another's slots (an address that is
-- throttled could otherwise still use up an account's slots without ever being checked).
CREATE FUNCTION login_throttle_take(
    keys bytea[], limits integer[], base_secs double precision, max_secs double precision,
    idle_secs double precision
) RETURNS double precision
LANGUAGE plpgsql AS $$
DECLARE
    k    bytea;
    at   timestamptz;
    wait double precision;
BEGIN
    -- Lock each key's row in one order, so two attempts never wait for each other in a cycle.
    -- An upsert rather than INSERT .. DO NOTHING and SELECT .. FOR UPDATE: that SELECT finds no
    -- row when a concurrent cleanup deleted it meanwhile, and the attempt would go uncounted.
    FOR k IN SELECT u.key FROM unnest(keys) AS u(key) ORDER BY u.key LOOP
        INSERT INTO login_throttle AS t (key, failures, last_attempt_at)
        VALUES (k, 0, clock_timestamp())
        ON CONFLICT (key) DO UPDATE SET failures = t.failures;
    END LOOP;
    -- After the locks: now() is when the transaction began, maybe long before the rows were free.
    at := clock_timestamp();

    SELECT max(extract(epoch FROM t.last_attempt_at - at)
               + least(base_secs * 2 ^ least(t.failures - u.lim, 60), max_secs))
      INTO wait
      FROM unnest(keys, limits) AS u(key, lim) JOIN login_throttle t USING (key)
     WHERE t.failures >= u.lim AND t.last_attempt_at > at - make_interval(secs => idle_secs);
    IF wait > 0 THEN
        RETURN wait;
    END IF;

    UPDATE login_throttle t
       SET failures = CASE WHEN t.last_attempt_at > at - make_interval(secs => idle_secs)
                           THEN t.failures ELSE 0 END + 1,
           last_attempt_at = at
     WHERE t.key = ANY (keys);
    -- Keep the table small. SKIP LOCKED: never wait for (or deadlock with) another attempt.
    DELETE FROM login_throttle
     WHERE key IN (SELECT key FROM login_throttle
                    WHERE last_attempt_at <= at - make_interval(secs => idle_secs)
                    ORDER BY last_attempt_at LIMIT 100 FOR UPDATE SKIP LOCKED);
    RETURN NULL;
END
$$;

-- The lockout's columns, no longer read or written.
ALTER TABLE credentials DROP COLUMN failed_attempts, DROP COLUMN locked_until;
