#!/bin/sh
# Walks through the REST API with curl: register a new user, log in, list
# the rooms, post to room 1 and read its history, printing each request and
# response. Exits non-zero at the first failure.
#
#   BASE_URL=http://localhost:3000 scripts/demo_api.sh
set -eu

BASE_URL=${BASE_URL:-http://localhost:3000}
BASE_URL=${BASE_URL%/}
RUN_ID="$(date +%s)-$$-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')"
EMAIL="demo-$RUN_ID@example.com"
PASSWORD="demo-password-123"
USERNAME="demo_$(echo "$RUN_ID" | tr -d '-' | cut -c1-24)"
BODY_FILE=$(mktemp)
trap 'rm -f "$BODY_FILE"' EXIT

# call STEP EXPECTED_STATUS METHOD PATH [JSON_BODY] [TOKEN]: prints the step
# and the response; the response body is left in $BODY_FILE.
call() {
    step=$1 expected=$2 method=$3 path=$4 data=${5:-} token=${6:-}
    printf '\n== %s\n%s %s%s\n' "$step" "$method" "$BASE_URL" "$path"
    [ -n "$data" ] && printf '%s\n' "$data"
    set -- -sS -o "$BODY_FILE" -w '%{http_code}' -X "$method" "$BASE_URL$path"
    [ -n "$data" ] && set -- "$@" -H 'Content-Type: application/json' --data-binary "$data"
    [ -n "$token" ] && set -- "$@" -H "Authorization: Bearer $token"
    if ! status=$(curl "$@"); then
        echo "FAILED: could not reach $BASE_URL" >&2
        exit 1
    fi
    printf -- '-> %s\n' "$status"
    cat "$BODY_FILE"
    printf '\n'
    if [ "$status" != "$expected" ]; then
        echo "FAILED: $step: expected HTTP $expected, got $status" >&2
        exit 1
    fi
}

# json FIELD...: prints a field of the last response (e.g. json user id).
json() {
    python3 -c '
import json, sys
value = json.load(open(sys.argv[1]))
for key in sys.argv[2:]:
    value = value[int(key)] if isinstance(value, list) else value[key]
print(value)' "$BODY_FILE" "$@"
}

call "Health" 200 GET /health

call "Register $EMAIL" 201 POST /auth/register \
    "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\",\"username\":\"$USERNAME\"}"

call "Log in" 200 POST /auth/login "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}"
TOKEN=$(json token)
USER_ID=$(json user id)
echo "token: ${TOKEN%%.*}.…  user id: $USER_ID"

call "List rooms" 200 GET /rooms "" "$TOKEN"
echo "first room: $(json 0 name)"

call "Post to room 1" 201 POST /rooms/1/messages \
    "{\"content\":\"Hello from demo_api.sh ($USERNAME)\"}" "$TOKEN"
MESSAGE_ID=$(json id)

call "Read room 1 history" 200 GET "/rooms/1/messages?limit=5" "" "$TOKEN"
python3 -c '
import json, sys
ids = [m["id"] for m in json.load(open(sys.argv[1]))["messages"]]
sys.exit(0 if int(sys.argv[2]) in ids else 1)' "$BODY_FILE" "$MESSAGE_ID" || {
    echo "FAILED: message $MESSAGE_ID is not in the history" >&2
    exit 1
}

printf '\nAll steps passed. Try the WebSocket client:\n  scripts/demo_ws.py %s 1\n' "$TOKEN"
