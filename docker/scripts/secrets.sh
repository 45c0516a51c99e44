#!/bin/bash
# One-shot: generate every password the stack needs into the `secrets` volume, once.
# Re-running keeps existing values (Elasticsearch only reads the elastic password when its
# data directory is first created). Each file is readable only by the uid of the container
# that needs it: 1000 (Elasticsearch, Kibana) or 10001 (rule-runner).
set -euo pipefail
umask 077
dir=/secrets

generate() {
  local raw
  raw=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
  printf '%s' "${raw:0:24}"
}

# keep NAME OWNER [VALUE]: write VALUE (or a fresh password) unless the file already exists.
keep() {
  local name=$1 owner=$2 value=${3:-}
  if [ ! -s "$dir/$name" ]; then
    printf '%s' "${value:-$(generate)}" > "$dir/$name"
    echo "secrets: generated $name"
  else
    echo "secrets: kept existing $name"
  fi
  chown "$owner" "$dir/$name"
  chmod 0400 "$dir/$name"
}

keep elastic 1000:0 "${ELASTIC_PASSWORD:-}"
keep kibana_system 1000:0
# Kibana refuses encryption keys shorter than 32 characters.
keep kibana_encryption_key 1000:0 "$(generate)$(generate)"
keep rule_runner 10001:10001
keep rule_runner_security 10001:10001
keep rule_runner_setup 10001:10001
keep rule_runner_loader 10001:10001
