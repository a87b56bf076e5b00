-- Sponsors (issue [security]): who registered each user or granted them a role. A user may not
-- approve or pay what one of their sponsors requested or approved, so an admin cannot create a
-- puppet account and take cash out through it. The users row (written with the user's events)
-- carries them, so that authenticating a request gives the command everything it decides on,
-- and the append's session check refuses a command decided on sponsors that changed since.
-- Filled from the user events already recorded (`registered_by`, `granted_by`).
ALTER TABLE users ADD COLUMN sponsors uuid[] NOT NULL DEFAULT '{}';

UPDATE users u
SET sponsors = coalesce((
    SELECT array_agg(DISTINCT s.by ORDER BY s.by)
    FROM (SELECT (e.payload -> e.event_type ->> CASE e.event_type WHEN 'UserRegistered' THEN 'registered_by'
                                                                   ELSE 'granted_by' END)::uuid AS by
          FROM events e
          WHERE e.aggregate_type = 'user' AND e.aggregate_id = u.id::text
            AND e.event_type IN ('UserRegistered', 'RoleGranted')) s
    WHERE s.by IS NOT NULL), '{}');
