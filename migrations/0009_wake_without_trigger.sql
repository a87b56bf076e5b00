-- Wake-ups that do not serialise commits (issue [foundation]).
--
-- The statement trigger of migration 0003 sent NOTIFY from every transaction that inserted
-- events. PostgreSQL delivers notifications at commit under one cluster-wide lock, so every
-- appending transaction queued behind every other one: measured on the 2-core development
-- machine, 4.0k single-event transactions/s with the trigger against 9.7k without it.
--
-- The service now wakes projection workers itself after its commits: in memory in the same
-- process, and with one NOTIFY per burst of commits, sent in a transaction of its own, for
-- workers in other processes (commands/src/wake.rs). Workers keep polling for events written
-- by anything else. The events table itself does not change.
DROP TRIGGER events_notify_insert ON events;
DROP FUNCTION events_notify();
