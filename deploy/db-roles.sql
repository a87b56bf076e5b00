-- deploy/db-roles.sql: the Petty Cash database, its three roles and their grants.
--
-- Run it as a PostgreSQL superuser, with psql. It is idempotent. Run it twice on a new install:
--
--   1. before the first `pettycash migrate`: creates the roles and the database;
--   2. after `pettycash migrate` has created the tables: grants on the tables. Run it again
--      after every upgrade whose migrations add tables, and after every restore.
--
--   sudo -u postgres psql -X -f deploy/db-roles.sql \
--       -v owner_password="$(cat /root/pettycash-owner.pw)" \
--       -v app_password="$(cat /root/pettycash-app.pw)" \
--       -v auditor_password="$(cat /root/pettycash-auditor.pw)"
--
-- A password is needed only to create a role or to change its password. Later runs may leave
-- them out. Generate each with `openssl rand -hex 24`. Hex needs no URL-encoding in a
-- DATABASE_URL. `-v` values are visible in the process list while psql runs, so run this on a
-- host without untrusted local users, or give the passwords on a later interactive run with
-- `\password`.
--
-- Optional variables (defaults in brackets): dbname [pettycash], owner_role [pettycash_owner],
-- app_role [pettycash_app], auditor_role [pettycash_auditor]. Roles belong to the whole cluster.
-- A second installation on the same cluster (e.g. staging) needs its own role names.
--
-- The roles:
--
--   pettycash_owner    owns the database, schema public and every table in it. `pettycash
--                      migrate` must run as this role: DATABASE_URL of the owner, e.g. in
--                      /etc/pettycash/migrate.env (see migrate.env.example and the systemd unit).
--                      Nothing else should ever hold these credentials. It is a member of
--                      the app role (never the other way round).
--   pettycash_app      what `pettycash serve` connects as (DATABASE_URL in pettycash.env).
--                      On `events` it has SELECT and INSERT only: no UPDATE, DELETE or TRUNCATE.
--                      The event store is append-only by grant as well as by trigger (the
--                      trigger in migration 0001 also stops the owner). It has SELECT, INSERT,
--                      UPDATE and DELETE on users, credentials, sessions, idempotency_keys,
--                      snapshots, login_throttle, org_units, mail_outbox, invitations and
--                      delegations, and USAGE on sequences. It cannot create, alter or drop
--                      anything in schema public.
--   pettycash_auditor  SELECT only, read-only transactions by default. For auditors,
--                      reporting, and backups (deploy/backup.sh can run as this role). On a
--                      physical streaming replica the roles and grants are those of the primary.
--                      Create them there. It can read `credentials` (argon2 password hashes)
--                      and `sessions` (HMACs of tokens, useless without SECRET_KEY). That is
--                      needed for complete backups. If backups run as the owner instead, you
--                      may `REVOKE SELECT ON credentials FROM pettycash_auditor` after this file.
--
-- Schema `app`: owned by the owner. The app role may create objects in it, and it comes
-- first in the app role's search_path (then public). It exists for two reasons:
--
--   * `pettycash serve` runs the migrator at start-up, and sqlx's migrator always starts with
--     `CREATE TABLE IF NOT EXISTS _sqlx_migrations`. PostgreSQL checks CREATE permission on
--     the target schema even when the table exists, so a role without CREATE on it fails
--     ("permission denied for schema public"). `app` holds a read-only view
--     `app._sqlx_migrations` of public._sqlx_migrations, owned by the owner. The existence
--     check finds the view, so nothing is created. A migration that is still pending when
--     `serve` starts fails with a permission error (the app cannot record it in the view),
--     and the service does not start: only the owner migrates. Never drop that view while the
--     app's search_path setting is in place.
--   * Objects the service creates while it runs land there, not in public (the projection
--     engine of a later issue builds read-model tables and views at run time). The auditor
--     can read them. After a restore this file hands them back to the app role.
--
-- Why not give the app CREATE on public: it could then plant functions there that the owner's
-- migrations might pick up. The owner's search_path does not contain `app`.

\set ON_ERROR_STOP on
\set QUIET on

\if :{?dbname}
\else
\set dbname pettycash
\endif
\if :{?owner_role}
\else
\set owner_role pettycash_owner
\endif
\if :{?app_role}
\else
\set app_role pettycash_app
\endif
\if :{?auditor_role}
\else
\set auditor_role pettycash_auditor
\endif

SELECT 'DO $m$ BEGIN RAISE EXCEPTION ''db-roles.sql must be run by a PostgreSQL superuser (e.g. sudo -u postgres psql -f ...)''; END $m$'
 WHERE NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) \gexec

-- ---------------------------------------------------------------------------------------------
-- Roles. A missing role needs its password. An existing role gets a new password only when one
-- is given.
-- ---------------------------------------------------------------------------------------------

\if :{?owner_password}
SELECT format('CREATE ROLE %I LOGIN', :'owner_role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner_role') \gexec
ALTER ROLE :"owner_role" PASSWORD :'owner_password';
\else
SELECT format('DO $m$ BEGIN RAISE EXCEPTION %L; END $m$',
              format('role %s does not exist: give its password with -v owner_password=...', :'owner_role'))
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner_role') \gexec
\endif

\if :{?app_password}
SELECT format('CREATE ROLE %I LOGIN', :'app_role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_role') \gexec
ALTER ROLE :"app_role" PASSWORD :'app_password';
\else
SELECT format('DO $m$ BEGIN RAISE EXCEPTION %L; END $m$',
              format('role %s does not exist: give its password with -v app_password=...', :'app_role'))
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_role') \gexec
\endif

\if :{?auditor_password}
SELECT format('CREATE ROLE %I LOGIN', :'auditor_role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'auditor_role') \gexec
ALTER ROLE :"auditor_role" PASSWORD :'auditor_password';
\else
SELECT format('DO $m$ BEGIN RAISE EXCEPTION %L; END $m$',
              format('role %s does not exist: give its password with -v auditor_password=...', :'auditor_role'))
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'auditor_role') \gexec
\endif

-- Plain login roles: no superuser, no role or database creation, no replication, no RLS bypass.
ALTER ROLE :"owner_role"   LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE :"app_role"     LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE :"auditor_role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
-- The auditor reads. A session of its own may still `SET default_transaction_read_only = off`,
-- but it has no write grants anyway.
ALTER ROLE :"auditor_role" SET default_transaction_read_only = on;

-- Nobody may act as the owner by membership.
SELECT format('REVOKE %I FROM %I', :'owner_role', m.rolname)
  FROM pg_auth_members am
  JOIN pg_roles r ON r.oid = am.roleid
  JOIN pg_roles m ON m.oid = am.member
 WHERE r.rolname = :'owner_role' AND m.rolname IN (:'app_role', :'auditor_role') \gexec
-- The other way round is fine: the owner may act as the app. It needs to, to drop or replace
-- what the app created in schema `app` (restore.sh --force, a migration that cleans up).
SELECT format('GRANT %I TO %I', :'app_role', :'owner_role')
 WHERE NOT pg_has_role(:'owner_role', :'app_role', 'MEMBER') \gexec

-- ---------------------------------------------------------------------------------------------
-- The database, owned by the owner. Only the three roles may connect.
-- ---------------------------------------------------------------------------------------------

SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0', :'dbname', :'owner_role', 'UTF8')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'dbname') \gexec
ALTER DATABASE :"dbname" OWNER TO :"owner_role";
REVOKE ALL ON DATABASE :"dbname" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"dbname" TO :"app_role", :"auditor_role";

\connect :dbname
\set ON_ERROR_STOP on
\set QUIET on

-- The owner owns schema public (PostgreSQL 15+ gives it to the database owner anyway; older
-- versions give it to the superuser and let everyone create in it).
ALTER SCHEMA public OWNER TO :"owner_role";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app_role", :"auditor_role";

-- Default privileges on what the owner creates later (i.e. what future migrations create).
-- New tables are readable by the app and the auditor, and writable by nobody but the owner.
-- When a migration adds a table the service writes to, add it to the list of state tables
-- below and run this file again after migrating. This file warns about tables without a
-- write grant. Do not give the app default INSERT/UPDATE/DELETE on tables: a new append-only
-- table would silently become writable.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA public
    GRANT SELECT ON TABLES TO :"app_role", :"auditor_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA public
    GRANT SELECT ON SEQUENCES TO :"auditor_role";

-- ---------------------------------------------------------------------------------------------
-- Tables: only once `pettycash migrate` (as the owner) has created them.
-- ---------------------------------------------------------------------------------------------

SELECT to_regclass('public.events') IS NOT NULL AS schema_ready,
       to_regclass('public._sqlx_migrations') IS NOT NULL AS has_migrations_table \gset

\if :schema_ready

-- Everything in public must belong to the owner. A table created by a migration run as
-- another role (e.g. postgres) would be missed by the default privileges above. Migrations
-- could not alter it either.
SELECT format('DO $m$ BEGIN RAISE EXCEPTION %L; END $m$',
              format('not owned by %s: %s. Fix with ALTER TABLE ... OWNER TO %s (as a superuser), then run this file again',
                     :'owner_role', string_agg(c.relname, ', ' ORDER BY c.relname), :'owner_role'))
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
   AND pg_get_userbyid(c.relowner) <> :'owner_role'
HAVING count(*) > 0 \gexec

BEGIN;
-- Granted by the owner, so that the grants are recorded as the owner's.
SET LOCAL ROLE :"owner_role";
SET LOCAL client_min_messages = warning;

-- Start from nothing, so that after this file the roles have exactly the grants below.
REVOKE ALL ON ALL TABLES    IN SCHEMA public FROM PUBLIC, :"app_role", :"auditor_role";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC, :"app_role", :"auditor_role";

-- Read: everything, for both.
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"app_role", :"auditor_role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app_role";
GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO :"auditor_role";

-- The event store: append only. Never UPDATE, DELETE or TRUNCATE (nor REFERENCES, TRIGGER).
GRANT SELECT, INSERT ON events TO :"app_role";
-- The seals over the event store (migration 0004): append only as well.
SELECT format('GRANT SELECT, INSERT ON public.event_seals TO %I', :'app_role')
 WHERE to_regclass('public.event_seals') IS NOT NULL \gexec

-- State the service keeps next to the events (those that exist in this schema version).
-- projection_checkpoints belongs to the projection engine of a later issue.
SELECT format('GRANT SELECT, INSERT, UPDATE, DELETE ON public.%I TO %I', t, :'app_role')
  FROM unnest(ARRAY['users', 'credentials', 'sessions', 'idempotency_keys', 'snapshots',
                    'projection_checkpoints', 'login_throttle', 'org_units', 'mail_outbox',
                    'invitations', 'delegations']) AS t
 WHERE to_regclass('public.' || quote_ident(t)) IS NOT NULL \gexec

-- Schema `app` (see the top).
CREATE SCHEMA IF NOT EXISTS app;
REVOKE ALL ON SCHEMA app FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA app TO :"app_role";
GRANT USAGE ON SCHEMA app TO :"auditor_role";
\if :has_migrations_table
CREATE OR REPLACE VIEW app._sqlx_migrations AS SELECT * FROM public._sqlx_migrations;
REVOKE ALL ON app._sqlx_migrations FROM PUBLIC, :"app_role", :"auditor_role";
GRANT SELECT ON app._sqlx_migrations TO :"app_role", :"auditor_role";
\else
\echo 'db-roles.sql: no _sqlx_migrations table (the schema was not created by `pettycash migrate`):'
\echo '             `pettycash serve` as' :app_role 'will fail until `pettycash migrate` has run as' :owner_role
\endif
COMMIT;

-- What the app creates in `app` is readable by the auditor (and backups).
ALTER DEFAULT PRIVILEGES FOR ROLE :"app_role" IN SCHEMA app GRANT SELECT ON TABLES TO :"auditor_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"app_role" IN SCHEMA app GRANT SELECT ON SEQUENCES TO :"auditor_role";

-- After a restore (pg_restore --no-owner, run as the owner) the app's objects in `app`
-- belong to the owner: give them back, and let the auditor read them.
SELECT format('ALTER %s app.%I OWNER TO %I',
              CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                             WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
              c.relname, :'app_role')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'app' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
   AND c.relname <> '_sqlx_migrations'
   AND pg_get_userbyid(c.relowner) <> :'app_role'
   -- Sequences owned by a table column move with their table.
   AND NOT (c.relkind = 'S' AND EXISTS (SELECT FROM pg_depend d
                                         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                           AND d.refclassid = 'pg_class'::regclass
                                           AND d.deptype IN ('a', 'i'))) \gexec
SELECT format('GRANT SELECT ON app.%I TO %I', c.relname, :'auditor_role')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'app' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
   AND c.relname <> '_sqlx_migrations' \gexec

\if :has_migrations_table
ALTER ROLE :"app_role" IN DATABASE :"dbname" SET search_path = app, public;
ALTER ROLE :"auditor_role" IN DATABASE :"dbname" SET search_path = public, app;
\endif

-- Tables in public the app may only read: fine for tables it only reads. A table the service
-- writes to needs to be in the list of state tables above.
SELECT format('DO $m$ BEGIN RAISE NOTICE %L; END $m$',
              format('table %s is read-only for %s: if the service writes to it, add it to the state tables in deploy/db-roles.sql',
                     c.relname, :'app_role'))
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
   AND c.relname NOT IN ('events', '_sqlx_migrations', 'event_authentication')
   AND NOT has_table_privilege(:'app_role', c.oid, 'INSERT') \gexec

\echo 'db-roles.sql: roles, database and table grants are in place for database' :dbname
\else
\echo 'db-roles.sql: roles and database' :dbname 'are ready. No tables yet: run `pettycash migrate` as' :owner_role 'then run this file again for the table grants.'
\endif
