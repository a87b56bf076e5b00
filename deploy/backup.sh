#!/usr/bin/env bash
# deploy/backup.sh: dump the Petty Cash database to a timestamped, checksummed file and
# delete old backups.
#
#   backup.sh [--dir DIR] [--keep-days N]
#
# The database comes from BACKUP_DATABASE_URL, else DATABASE_URL, else the libpq variables
# (PGHOST, PGDATABASE, ...; passwords best in ~/.pgpass). The pettycash_auditor role (read-only)
# is enough to take a backup (see db-roles.sql).
#
#   --dir DIR       where backups go (default: BACKUP_DIR, else /var/backups/pettycash)
#   --keep-days N   delete this script's backups older than N days after a successful backup
#                   (default: KEEP_DAYS, else 30; 0 keeps everything)
#
# Writes DIR/pettycash-<database>-<UTC timestamp>.dump (pg_dump custom format) and
# DIR/<same>.dump.sha256 (check with `cd DIR && sha256sum -c FILE.sha256`). Only the database
# is backed up. The environment file (/etc/pettycash/pettycash.env, with SECRET_KEY and the
# database passwords) is never copied into a backup; keep it in your secret store. The dump
# does contain password hashes (argon2) and session-token HMACs, so backups are created mode 0600.
# Copy them off the host (the retention here is local only).
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

die() {
    echo "backup.sh: $*" >&2
    exit 1
}

dir="${BACKUP_DIR:-/var/backups/pettycash}"
keep_days="${KEEP_DAYS:-30}"
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) [ $# -ge 2 ] || die "--dir needs a directory"; dir="$2"; shift 2 ;;
        --dir=*) dir="${1#--dir=}"; shift ;;
        --keep-days) [ $# -ge 2 ] || die "--keep-days needs a number"; keep_days="$2"; shift 2 ;;
        --keep-days=*) keep_days="${1#--keep-days=}"; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
case "$keep_days" in
    '' | *[!0-9]*) die "--keep-days must be a whole number of days, not '$keep_days'" ;;
esac

for tool in pg_dump pg_restore psql sha256sum flock; do
    command -v "$tool" >/dev/null || die "$tool is not installed (Debian/Ubuntu: apt-get install postgresql-client coreutils util-linux)"
done

url="${BACKUP_DATABASE_URL:-${DATABASE_URL:-}}"
conn=()
if [ -n "$url" ]; then
    conn=(--dbname="$url")
elif [ -z "${PGDATABASE:-}" ]; then
    die "set BACKUP_DATABASE_URL (or DATABASE_URL, or PGDATABASE and friends) to the database to back up"
fi

umask 077
mkdir -p "$dir"
[ -w "$dir" ] || die "cannot write to $dir"

# One backup at a time.
exec 9>"$dir/.backup.lock"
flock -n 9 || die "another backup is running (lock $dir/.backup.lock)"

dbname="$(psql -X -A -t -q --no-password "${conn[@]}" -c 'SELECT current_database()')" ||
    die "cannot connect to the database"
# Keep the file name simple whatever the database is called.
safe_name="$(printf '%s' "$dbname" | tr -c 'A-Za-z0-9_.-' '_')"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
name="pettycash-${safe_name}-${stamp}.dump"
file="$dir/$name"
partial="$file.partial"
[ ! -e "$file" ] || die "$file already exists"

cleanup() {
    rm -f "$partial"
}
trap cleanup EXIT

started=$SECONDS
pg_dump "${conn[@]}" --format=custom --compress=6 --no-password --file="$partial"
[ -s "$partial" ] || die "pg_dump wrote an empty file"
# The archive must be readable: list its table of contents.
pg_restore --list "$partial" >/dev/null || die "the dump $partial is not a readable archive"
mv "$partial" "$file"
(cd "$dir" && sha256sum "$name" >"$name.sha256")

size="$(du -h "$file" | cut -f1)"
echo "backup.sh: $file ($size, database $dbname, $((SECONDS - started))s); checksum in $name.sha256"

if [ "$keep_days" -gt 0 ]; then
    # Only files this script wrote, only after a successful backup, never the one just made.
    while IFS= read -r -d '' old; do
        [ "$old" = "$file" ] && continue
        rm -f -- "$old" "$old.sha256"
        echo "backup.sh: deleted $old (older than $keep_days days)"
    done < <(find "$dir" -maxdepth 1 -type f -name 'pettycash-*.dump' -mmin "+$((keep_days * 1440))" -print0)
    # Checksums whose dump is gone.
    while IFS= read -r -d '' sum; do
        [ -e "${sum%.sha256}" ] || rm -f -- "$sum"
    done < <(find "$dir" -maxdepth 1 -type f -name 'pettycash-*.dump.sha256' -print0)
fi
