#!/bin/bash
# One-shot, after Elasticsearch is healthy: give kibana_system its generated password and
# create rule-runner's roles (docker/roles/*.json) and users. Idempotent: roles and users are
# PUT, so re-running applies the current files and passwords.
set -euo pipefail
umask 077
es=${ES_URL:-http://elasticsearch:9200}

# Credentials go through a netrc file, not the command line, so `ps` never shows them.
netrc=$(mktemp)
trap 'rm -f "$netrc"' EXIT
printf 'machine %s login elastic password %s\n' "$(echo "$es" | sed -E 's#^https?://([^:/]+).*#\1#')" \
  "$(cat /secrets/elastic)" > "$netrc"

# call METHOD PATH BODY: fail loudly with Elasticsearch's answer on anything but 2xx.
call() {
  local method=$1 path=$2 body=$3 status
  status=$(curl --silent --show-error --netrc-file "$netrc" -o /tmp/response -w '%{http_code}' \
    -X "$method" -H 'Content-Type: application/json' --data-binary "$body" "$es$path")
  case $status in
    2*) echo "setup: $method $path -> $status" ;;
    *) echo "setup: $method $path failed with HTTP $status: $(cat /tmp/response)" >&2; exit 1 ;;
  esac
}

until curl --silent --netrc-file "$netrc" -o /dev/null -w '%{http_code}' "$es/_security/_authenticate" | grep -q '^200$'; do
  echo "setup: waiting for Elasticsearch at $es"
  sleep 3
done

call POST /_security/user/kibana_system/_password "{\"password\":\"$(cat /secrets/kibana_system)\"}"

for role in /roles/*.json; do
  call PUT "/_security/role/$(basename "$role" .json)" "@$role"
done

for user in rule_runner rule_runner_security rule_runner_setup rule_runner_loader; do
  call PUT "/_security/user/$user" \
    "{\"password\":\"$(cat "/secrets/$user")\",\"roles\":[\"$user\"],\"full_name\":\"rule-runner ($user)\"}"
done
echo "setup: done"
