#!/usr/bin/env bash
# deploy/restore.sh: restore a backup made by backup.sh, then bring its schema up to date.
#
#   restore.sh [--force] [--no-migrate] [--no-checksum] BACKUP.dump
#
# The target database comes from RESTORE_DATABASE_URL, else DATABASE_URL. Connect as the
# OWNER role (pettycash_owner): restored objects belong to whoever restores them
# (--no-owner), and `pettycash migrate` must run as the owner. Create an empty target first
# with db-roles.sql (-v dbname=...). Stop the service (systemctl stop pettycash) before you
# restore over the database it uses.
#
#   --force        restore into a database that is not empty: schema `app` (what the service
#                  built at run time) is dropped with everything in it, and the objects in the
#                  backup are dropped and re-created (pg_restore --clean --if-exists). Their
#                  current data is lost. Other objects in public stay as they are. Still one
#                  transaction: the SQL from pg_restore is applied by psql, with the drop first.
#   --no-migrate   do not run `pettycash migrate` afterwards
#   --no-checksum  restore even without BACKUP.dump.sha256 (a checksum that does not match
#                  always stops the restore)
#
# PETTYCASH_BIN is the pettycash binary (default /usr/local/bin/pettycash, else `pettycash` on
# PATH). The restore runs in a single transaction: it either completes or leaves the target
# as it was. Grants are not restored (--no-acl): run db-roles.sql for the target afterwards.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

die() {
    echo "restore.sh: $*" >&2
    exit 1
}

force=0
migrate=1
checksum=1
file=""
while [ $# -gt 0 ]; do
    case "$1" in
        --force) force=1; shift ;;
        --no-migrate) migrate=0; shift ;;
        --no-checksum) checksum=0; shift ;;
        -h | --help) usage; exit 0 ;;
        -*) usage >&2; exit 2 ;;
        *) [ -z "$file" ] || { usage >&2; exit 2; }; file="$1"; shift ;;
    esac
done
[ -n "$file" ] || { usage >&2; exit 2; }
[ -f "$file" ] || die "no such file: $file"

for tool in pg_restore psql sha256sum; do
    command -v "$tool" >/dev/null || die "$tool is not installed (Debian/Ubuntu: apt-get install postgresql-client)"
done

url="${RESTORE_DATABASE_URL:-${DATABASE_URL:-}}"
[ -n "$url" ] || die "set RESTORE_DATABASE_URL (or DATABASE_URL) to the target database, as the owner role"

pettycash_bin="${PETTYCASH_BIN:-}"
if [ "$migrate" = 1 ] && [ -z "$pettycash_bin" ]; then
    if [ -x /usr/local/bin/pettycash ]; then
        pettycash_bin=/usr/local/bin/pettycash
    else
        pettycash_bin="$(command -v pettycash || true)"
    fi
    [ -n "$pettycash_bin" ] || die "pettycash binary not found: set PETTYCASH_BIN, or use --no-migrate and run \`pettycash migrate\` yourself"
fi

# 1. The file is what backup.sh wrote.
sum="$file.sha256"
if [ -f "$sum" ]; then
    (cd "$(dirname "$file")" && sha256sum --check --status "$(basename "$sum")") ||
        die "checksum mismatch: $file does not match $sum. Do not restore it."
    echo "restore.sh: checksum ok ($sum)"
elif [ "$checksum" = 1 ]; then
    die "no checksum file $sum (use --no-checksum to restore anyway)"
else
    echo "restore.sh: warning: no checksum file, restoring unverified" >&2
fi
pg_restore --list "$file" >/dev/null || die "$file is not a pg_dump custom-format archive"

# 2. The target.
psql_target() {
    psql -X -A -t -q --no-password -v ON_ERROR_STOP=1 --dbname="$url" "$@"
}
IFS='|' read -r dbname dbuser is_super < <(
    psql_target -c "SELECT current_database(), current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
) || die "cannot connect to the target database"
if [ "$is_super" = t ]; then
    echo "restore.sh: warning: restoring as superuser $dbuser: the restored tables will belong to $dbuser," \
        "not to the owner role, and migrations run as the owner will fail. Restore as pettycash_owner" \
        "unless this is a development database." >&2
fi
objects="$(psql_target -c "
    SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
       AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')")"
replace=0
if [ "$objects" -gt 0 ]; then
    [ "$force" = 1 ] || die "database $dbname is not empty ($objects tables, views or sequences). Restore into an" \
        "empty database (create one with db-roles.sql -v dbname=...), or use --force to drop and" \
        "re-create the objects in the backup (their current data is lost)."
    echo "restore.sh: --force: replacing the contents of non-empty database $dbname"
    replace=1
fi

# 3. Restore, all or nothing.
echo "restore.sh: restoring $file into $dbname as $dbuser"
started=$SECONDS
if [ "$replace" = 0 ]; then
    pg_restore --no-owner --no-acl --exit-on-error --single-transaction --no-password \
        --dbname="$url" "$file"
else
    # Read models the service built after the backup was taken would survive a plain
    # `pg_restore --clean` (and block its DROP SCHEMA app), next to restored checkpoints that
    # know nothing of them. Drop schema `app` entirely, in the same transaction as the restore.
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    chmod 700 "$work"
    pg_restore --no-owner --no-acl --exit-on-error --clean --if-exists --file="$work/restore.sql" "$file"
    psql -X -q --no-password -v ON_ERROR_STOP=1 --single-transaction --dbname="$url" \
        -c 'SET client_min_messages = warning' -c 'DROP SCHEMA IF EXISTS app CASCADE' \
        -f "$work/restore.sql" >/dev/null
    rm -rf "$work"
fi
echo "restore.sh: restored in $((SECONDS - started))s"

# 4. Bring the schema up to the installed version.
if [ "$migrate" = 1 ]; then
    # `pettycash migrate` takes no key: only the URL.
    echo "restore.sh: running $pettycash_bin migrate"
    DATABASE_URL="$url" "$pettycash_bin" migrate
fi

# 5. What is there now, and what the operator must do next.
summary="$(psql_target -F '|' -c "
    SELECT (SELECT count(*) FROM events), coalesce((SELECT max(global_position) FROM events), 0),
           coalesce((SELECT max(recorded_at)::text FROM events), 'never'),
           (SELECT count(*) FROM users)")"
IFS='|' read -r events last_position last_event users <<<"$summary"
cat <<EOF

restore.sh: done. Database $dbname now holds:
    events:               $events (last global_position $last_position, last recorded at $last_event)
    users:                $users

Next:
  1. Grants were not restored. As a superuser, run:
         sudo -u postgres psql -X -f deploy/db-roles.sql -v dbname=$dbname
  2. Check the ledger: DATABASE_URL=<this database> SEAL_KEY=<the seal key> pettycash-replay verify
     (exit 0 = no business rule violated; tamper evidence comes with a later issue), and
     check that the event count and the last global_position above match what you expect
     from the time of the backup, e.g. against the source database or the backup run's log.
  3. Point DATABASE_URL at this database if it is new, start the service, and run
     deploy/smoke-test.sh against it.
EOF
