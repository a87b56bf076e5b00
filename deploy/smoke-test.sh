#!/usr/bin/env bash
# deploy/smoke-test.sh: post-deploy check of a running Petty Cash service.
#
#   smoke-test.sh BASE_URL          e.g. https://pettycash.example.com or http://127.0.0.1:8000
#
# Prints PASS or FAIL for each check and exits 1 if any check failed (2 on wrong usage).
# Changes nothing, except that the optional login check opens a session and closes it again.
#
# Optional environment:
#   SMOKE_EMAIL, SMOKE_PASSWORD  also sign in as this user, call /api/me, and sign out. Use a
#                                dedicated account: wrong passwords throttle its sign-ins (429).
#   SMOKE_INSECURE=1             accept an untrusted TLS certificate (staging, self-signed)
#   SMOKE_TIMEOUT                seconds per request (default 10)
#   SMOKE_HTTP_URL               the plain-http URL for the redirect check, when BASE_URL is
#                                https with a port (default: BASE_URL with http://)
#
# Through nginx over https it also checks the security headers (HSTS, nosniff, frame
# options) and that plain http redirects to https.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

[ $# -eq 1 ] || { usage >&2; exit 2; }
case "$1" in
    -h | --help) usage; exit 0 ;;
    http://* | https://*) ;;
    *) echo "smoke-test.sh: BASE_URL must start with http:// or https://" >&2; exit 2 ;;
esac
base="${1%/}"
command -v curl >/dev/null || { echo "smoke-test.sh: curl is not installed" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"

curl_opts=(--silent --show-error --max-time "${SMOKE_TIMEOUT:-10}" --user-agent "pettycash-smoke-test")
[ "${SMOKE_INSECURE:-0}" = 1 ] && curl_opts+=(--insecure)

failures=0
checks=0
pass() {
    checks=$((checks + 1))
    printf 'PASS  %s\n' "$1"
}
fail() {
    checks=$((checks + 1))
    failures=$((failures + 1))
    printf 'FAIL  %s\n' "$1"
    shift
    local line
    for line in "$@"; do printf '        %s\n' "$line"; done
}

# request METHOD PATH [curl args...]: sets $status, $headers and $body (its first 2000 bytes,
# for messages; the whole body is in $work/body).
request() {
    local method="$1" path="$2"
    shift 2
    : >"$work/body"
    : >"$work/headers"
    status="$(curl "${curl_opts[@]}" --request "$method" --output "$work/body" --dump-header "$work/headers" \
        --write-out '%{http_code}' "$@" "$base$path" 2>"$work/error")" || status="000"
    body="$(head -c 2000 "$work/body")"
    headers="$(tr -d '\r' <"$work/headers")"
    if [ "$status" = 000 ]; then
        body="(no response: $(head -c 300 "$work/error"))"
    fi
}

# header NAME: the value of response header NAME (case-insensitive), empty if absent.
header() {
    printf '%s\n' "$headers" | awk -v name="$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')" '
        { split($0, kv, ":"); if (tolower(kv[1]) == name) { sub(/^[^:]*:[ \t]*/, ""); value = $0 } }
        END { print value }'
}

is_json() {
    case "$(header content-type)" in application/json*) return 0 ;; *) return 1 ;; esac
}

# expect NAME EXPECTED_STATUS [extended regexes the body must match...]
expect() {
    local name="$1" want="$2" pattern
    shift 2
    if [ "$status" != "$want" ]; then
        fail "$name" "expected HTTP $want, got $status" "body: $body"
        return
    fi
    for pattern in "$@"; do
        if ! grep -Eq -- "$pattern" "$work/body"; then
            fail "$name" "HTTP $status, but the body does not match /$pattern/" "body: $body"
            return
        fi
    done
    pass "$name"
}

echo "Smoke test of $base"

request GET /health/
expect "GET /health/ is 200 with database ok" 200 '"status":"ok"' '"database":"ok"'
version="$(sed -nE 's/.*"version":"([^"]*)".*/\1/p' "$work/body")"
if [ -n "$(header x-request-id)" ]; then
    pass "responses carry X-Request-Id"
else
    fail "responses carry X-Request-Id" "no X-Request-Id header in the /health/ response"
fi

if [ "${base#https://}" != "$base" ]; then
    hsts="$(header strict-transport-security)"
    if grep -Eq 'max-age=[1-9][0-9]*' <<<"$hsts"; then
        pass "HSTS header is set ($hsts)"
    else
        fail "HSTS header is set" "Strict-Transport-Security: '${hsts}'"
    fi
    if [ "$(header x-content-type-options)" = nosniff ] && [ -n "$(header x-frame-options)" ]; then
        pass "X-Content-Type-Options and X-Frame-Options are set"
    else
        fail "X-Content-Type-Options and X-Frame-Options are set" \
            "X-Content-Type-Options: '$(header x-content-type-options)', X-Frame-Options: '$(header x-frame-options)'"
    fi
    # The http URL: SMOKE_HTTP_URL, else BASE_URL with http:// when it has no port.
    authority="${base#https://}"
    authority="${authority%%/*}"
    http_base="${SMOKE_HTTP_URL:-}"
    if [ -z "$http_base" ] && [ "${authority%:*}" = "$authority" ]; then
        http_base="http://${base#https://}"
    fi
    if [ -n "$http_base" ]; then
        saved_base="$base"
        base="${http_base%/}"
        request GET /health/
        base="$saved_base"
        location="$(header location)"
        case "$status" in
            301 | 302 | 307 | 308)
                if [ "${location#https://}" != "$location" ]; then
                    pass "plain http redirects to https ($status)"
                else
                    fail "plain http redirects to https" "HTTP $status to '$location'"
                fi
                ;;
            *) fail "plain http redirects to https" "GET $http_base/health/ answered $status" "body: $body" ;;
        esac
    else
        echo "SKIP  http to https redirect (BASE_URL has a port: set SMOKE_HTTP_URL to check it)"
    fi
fi

request GET /api/
expect "GET /api/ is 200 with the version" 200 '"version":"[^"]+"' '"endpoints":\['
api_version="$(sed -nE 's/.*"version":"([^"]*)".*/\1/p' "$work/body")"

request GET /api/openapi.json
expect "GET /api/openapi.json is 200" 200 '"openapi":"3\.' '"paths":'

request GET /api/me
if is_json; then
    expect "GET /api/me without a token is 401" 401 '"error":'
else
    fail "GET /api/me without a token is 401" "HTTP $status, Content-Type '$(header content-type)' (expected JSON)" "body: $body"
fi

request POST /api/requisitions/ --header 'Content-Type: application/json' --data-binary '{}'
expect "POST /api/requisitions/ without a token is 401" 401 '"error":'

request GET "/api/smoke-test-no-such-endpoint-$$"
if is_json; then
    expect "an unknown path is a JSON 404" 404 '"error":\{"code":"not_found"'
else
    fail "an unknown path is a JSON 404" "HTTP $status, Content-Type '$(header content-type)'" "body: $body"
fi

# json_string VALUE: VALUE as a JSON string literal.
json_string() {
    local s="$1"
    s="${s//\\/\\\\}"
    s="${s//\"/\\\"}"
    s="${s//$'\t'/\\t}"
    s="${s//$'\n'/\\n}"
    s="${s//$'\r'/\\r}"
    printf '"%s"' "$s"
}

if [ -n "${SMOKE_EMAIL:-}" ] && [ -n "${SMOKE_PASSWORD:-}" ]; then
    # The password goes through stdin and the token through a file: neither is in the
    # process list.
    printf '{"email":%s,"password":%s}' "$(json_string "$SMOKE_EMAIL")" "$(json_string "$SMOKE_PASSWORD")" |
        {
            request POST /api/auth/login --header 'Content-Type: application/json' --data-binary @-
            printf '%s\n%s\n' "$status" "$(head -c 100000 "$work/body")" >"$work/login"
        }
    status="$(head -n 1 "$work/login")"
    body="$(tail -n +2 "$work/login" | head -c 2000)"
    token="$(tail -n +2 "$work/login" | sed -nE 's/.*"token":"([^"]+)".*/\1/p')"
    if [ "$status" = 200 ] && [ -n "$token" ]; then
        pass "POST /api/auth/login as $SMOKE_EMAIL is 200 with a token"
        printf 'Authorization: Bearer %s\n' "$token" >"$work/auth"
        request GET /api/me --header "@$work/auth"
        expect "GET /api/me with the token is 200 and names a user" 200 '"email":"[^"]+"'
        request POST /api/auth/logout --header "@$work/auth"
        expect "POST /api/auth/logout is 204" 204
        request GET /api/me --header "@$work/auth"
        expect "the token no longer works after logout" 401
    else
        fail "POST /api/auth/login as $SMOKE_EMAIL is 200 with a token" "HTTP $status" "body: $body"
    fi
else
    echo "SKIP  login check (set SMOKE_EMAIL and SMOKE_PASSWORD to run it)"
fi

echo
if [ "$failures" -eq 0 ]; then
    echo "All $checks checks passed (version ${api_version:-${version:-unknown}})."
else
    echo "$failures of $checks checks FAILED."
    exit 1
fi
