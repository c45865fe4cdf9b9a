#!/usr/bin/env bash
# Install reman-edge as services on a Raspberry Pi 5 (Raspberry Pi OS Bookworm, 64-bit), a Jetson
# (JetPack 6, Ubuntu 22.04) or any Debian 12 machine. Idempotent: run it again after `git pull`
# to update; configuration and secrets that exist are never overwritten.
#
#   sudo deploy/raspberrypi/install.sh [--start] [--system-opencv] [--source DIR] [--san NAME]...
#   deploy/raspberrypi/install.sh --root DIR     # lay the files out under DIR only (tests, images)
#
# What it does:
#   Debian packages   mosquitto, mosquitto-clients, python3-venv, GStreamer (and libcamera on a Pi)
#   users             `reman` runs the node (video and render groups), `reman-gateway` the
#                     dashboard; each reads only its own config and secrets
#   /opt/reman        the virtual environment (venv/) with reman-edge installed, the models
#   /etc/reman        station.yaml, gateway.yaml, families/, generated secrets (never overwritten)
#   /var/lib/reman    the node's journal and images (owned by reman)
#   /var/lib/reman-gateway  the dashboard's store and snapshots (owned by reman-gateway)
#   systemd           reman-node.service, reman-gateway.service (enabled; started with --start)
#   mosquitto         authentication: conf.d/reman.conf, the ACL, a password file with the
#                     station's and the gateway's users, a local CA and server certificate for
#                     the TLS listener (for the host name, localhost and every address of the
#                     host; --san adds a DNS name or an IP address, and may be repeated)
#
# conf.d/reman.conf and reman.acl are treated as dpkg treats conffiles: upgraded in place while
# they are as this script last wrote them; once edited, kept, with the new version written beside
# them as NAME.reman-new. mosquitto is reloaded or restarted only when its files changed.
# /var/lib/reman-install/state records what this script wrote (sha256 of each file).
#
# With --root DIR the same files are laid out under DIR, and the steps that change the machine
# itself (apt-get, useradd, chown, the venv build, mosquitto_passwd, systemctl) are reported as
# skipped.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source_dir=$(cd "$script_dir/../.." && pwd)
root=""
start=0
system_opencv=0
sans=()

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

# One subjectAltName entry for the broker certificate: IP:ADDRESS or DNS:NAME.
san_entry() {
  if [[ $1 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ || $1 =~ ^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$ ]]; then
    echo "IP:$1"
  elif [[ $1 =~ ^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
    echo "DNS:$1"
  else
    echo "install.sh: --san $1 is neither an IP address nor a DNS name" >&2
    exit 2
  fi
}

while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=${2:?--root needs a folder}; shift 2 ;;
    --root=*) root=${1#--root=}; shift ;;
    --source) source_dir=${2:?--source needs a folder}; shift 2 ;;
    --san) sans+=("$(san_entry "${2:?--san needs a DNS name or an IP address}")"); shift 2 ;;
    --san=*) sans+=("$(san_entry "${1#--san=}")"); shift ;;
    --start) start=1; shift ;;
    --system-opencv) system_opencv=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ -n "$root" ]; then
  mkdir -p "$root"
  root=$(cd "$root" && pwd)
elif [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (sudo), or use --root DIR to lay the files out elsewhere" >&2
  exit 1
fi

etc="$root/etc/reman"
opt="$root/opt/reman"
var="$root/var/lib/reman"
var_gateway="$root/var/lib/reman-gateway"
units="$root/etc/systemd/system"
mosq="$root/etc/mosquitto"
state="$root/var/lib/reman-install/state"
# The service users: the node reads the station's config and broker password; the dashboard,
# which faces the web, reads only its own config, broker password and session secret.
node_user=reman
gateway_user=reman-gateway
# What the broker needs after this run: nothing, a reload (users, ACL) or a restart (listeners,
# certificates). A reload keeps every client connected, the PLC among them.
broker_reload=0
broker_restart=0
# Set by the steps below that may leave a file as it was: 1 when they changed something. (A
# flag, not the exit status: `set -e` does not apply inside a function called as a condition.)
changed=0

say() { echo "reman-install: $*"; }

# A step that changes the machine itself: run it, or in --root mode say that it was skipped.
system() {
  if [ -n "$root" ]; then
    say "skipped (--root): $*"
  else
    "$@"
  fi
}

sha256_of() { sha256sum < "$1" | cut -d ' ' -f 1; }

# The state file: one "KEY VALUE" line per thing this script wrote (KEY has no spaces).
state_get() {
  [ -f "$state" ] || return 0
  awk -v key="$1" '$1 == key { sub(/^[^ ]+ /, ""); print; exit }' "$state"
}

state_set() {
  local key=$1 value=$2 tmp
  [ "$(state_get "$key")" != "$value" ] || return 0
  install -d -m 0700 "$(dirname "$state")"
  tmp=$(mktemp "$state.XXXXXX")
  if [ -f "$state" ]; then
    awk -v key="$key" '$1 != key' "$state" > "$tmp"
  fi
  printf '%s %s\n' "$key" "$value" >> "$tmp"
  chmod 0600 "$tmp"
  mv "$tmp" "$state"
}

# Owner, group and mode of a file a service reads: root owns it, so the service cannot change
# it; the service's group reads it; nobody else does.
owned() {
  local owner=$1 mode=$2
  shift 2
  chmod "$mode" "$@"
  system chown "$owner" "$@"
}

# Install a file we own: replaced when it differs from the source.
install_file() {
  local src=$1 dst=$2 mode=$3
  changed=0
  if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
    say "unchanged $dst"
    return
  fi
  install -D -m "$mode" "$src" "$dst"
  changed=1
  say "installed $dst"
}

# Install a file we ship and the integrator may edit, as dpkg treats a conffile: upgraded in
# place while it is as we last wrote it (its sha256 is in the state file); once edited, kept,
# and a new version we ship is written beside it as NAME.reman-new.
install_conffile() {
  local src=$1 dst=$2 mode=$3 key="conffile:${2#"$root"}" shipped current recorded
  changed=0
  shipped=$(sha256_of "$src")
  recorded=$(state_get "$key")
  if [ ! -e "$dst" ]; then
    install -D -m "$mode" "$src" "$dst"
    state_set "$key" "$shipped"
    changed=1
    say "installed $dst"
    return
  fi
  current=$(sha256_of "$dst")
  if [ "$current" = "$shipped" ]; then
    state_set "$key" "$shipped"
    if [ -e "$dst.reman-new" ] && cmp -s "$src" "$dst.reman-new"; then
      rm -f "$dst.reman-new"
      say "removed $dst.reman-new: $dst is that version now"
    fi
    say "unchanged $dst"
    return
  fi
  if [ "$current" = "$recorded" ]; then
    install -m "$mode" "$src" "$dst"
    state_set "$key" "$shipped"
    changed=1
    say "upgraded $dst"
    return
  fi
  if [ "$shipped" = "$recorded" ]; then
    say "kept your changes in $dst"
    return
  fi
  # Edited here, and a new version shipped (or an install before the state file: unknown).
  install -m "$mode" "$src" "$dst.reman-new"
  state_set "$key" "$shipped"
  say "kept your changed $dst; the new version is $dst.reman-new: merge the two by hand"
}

# Install a file the integrator owns: only when it does not exist yet.
install_once() {
  local src=$1 dst=$2 mode=$3
  if [ -e "$dst" ]; then
    say "kept existing $dst"
  else
    install -D -m "$mode" "$src" "$dst"
    say "created $dst"
  fi
}

# A secret generated once: random, readable by root and one service's group only.
make_secret() {
  local dst=$1 group=$2
  if [ -e "$dst" ]; then
    say "kept existing secret $dst"
  else
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' > "$dst")
    say "created secret $dst"
  fi
  owned "root:$group" 0640 "$dst"
}

install_packages() {
  local packages=(mosquitto mosquitto-clients python3-venv python3-pip ca-certificates openssl sqlite3
    gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good)
  if grep -qs "Raspberry Pi" /proc/device-tree/model; then
    packages+=(rpicam-apps gstreamer1.0-libcamera)
  fi
  if [ "$system_opencv" -eq 1 ]; then
    packages+=(python3-opencv)
  fi
  system apt-get update -q
  system env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"
}

system_user() {
  local user=$1 home=$2 comment=$3
  if ! getent passwd "$user" > /dev/null; then
    useradd --system --user-group --home-dir "$home" --no-create-home \
      --shell /usr/sbin/nologin --comment "$comment" "$user"
    say "created user $user"
  fi
}

ensure_users() {
  if [ -n "$root" ]; then
    say "skipped (--root): create system user $node_user (groups video, render)"
    say "skipped (--root): create system user $gateway_user"
    return
  fi
  system_user "$node_user" /var/lib/reman "reman-edge node"
  system_user "$gateway_user" /var/lib/reman-gateway "reman-edge dashboard"
  local group
  for group in video render; do
    if getent group "$group" > /dev/null; then
      usermod -a -G "$group" "$node_user"
    fi
  done
}

make_folders() {
  install -d -m 0755 "$opt" "$opt/models" "$units" "$etc"
  install -d -m 0750 "$etc/families" "$var" "$var/images" "$var_gateway" "$var_gateway/snapshots"
  # Both services look up their own files in /etc/reman; each file says who may read it.
  owned root:root 0755 "$etc"
  owned "root:$node_user" 0750 "$etc/families"
  system chown -R "$node_user:$node_user" "$var"
  system chown -R "$gateway_user:$gateway_user" "$var_gateway"
}

install_config() {
  local tmp family
  tmp=$(mktemp)
  # The example points at the checkout's models/; installed, the model lives in /opt/reman/models.
  sed -e 's#^\(  path: \)\.\./models/#\1/opt/reman/models/#' \
    "$source_dir/config/station.example.yaml" > "$tmp"
  install_once "$tmp" "$etc/station.yaml" 0640
  # The dashboard writes only in its own folder, which the node's user cannot read.
  sed -e 's#^\(  [a-z_]*: \)/var/lib/reman/#\1/var/lib/reman-gateway/#' \
    "$source_dir/config/gateway.example.yaml" > "$tmp"
  install_once "$tmp" "$etc/gateway.yaml" 0640
  rm -f "$tmp"
  for family in "$source_dir"/config/families/*.yaml; do
    install_once "$family" "$etc/families/$(basename "$family")" 0640
  done
  move_gateway_store
  owned "root:$node_user" 0640 "$etc/station.yaml" "$etc"/families/*.yaml
  owned "root:$gateway_user" 0640 "$etc/gateway.yaml"
  make_secret "$etc/mqtt-password" "$node_user"
  make_secret "$etc/gateway-mqtt-password" "$gateway_user"
  make_secret "$etc/session-secret" "$gateway_user"
  warn_readable
}

# /etc/reman may be read by every user (each service finds its own files there), so a file an
# integrator added with a loose mode (a bench password) is readable by all: say so.
warn_readable() {
  local path
  while IFS= read -r path; do
    say "warning: every user can read $path; for a secret: chgrp reman (or reman-gateway), chmod 0640"
  done < <(find "$etc" -type f -perm -o=r)
}

# Installs before the dashboard had its own user kept its store in /var/lib/reman, which the
# gateway may no longer write: move the store and point gateway.yaml at the new place.
move_gateway_store() {
  local conf="$etc/gateway.yaml" old='/var/lib/reman/\(gateway\.db\|snapshots\)' name
  grep -q "^  [a-z_]*: $old *\$" "$conf" || return 0
  system systemctl stop reman-gateway || true
  for name in gateway.db gateway.db-wal gateway.db-shm; do
    if [ -e "$var/$name" ]; then mv "$var/$name" "$var_gateway/$name"; fi
  done
  if [ -d "$var/snapshots" ]; then
    find "$var/snapshots" -mindepth 1 -maxdepth 1 -exec mv -t "$var_gateway/snapshots" {} +
    rmdir "$var/snapshots"
  fi
  cp -p "$conf" "$conf.reman-old"
  sed -i -e "s#^\(  [a-z_]*: \)$old *\$#\1/var/lib/reman-gateway/\2#" "$conf"
  system chown -R "$gateway_user:$gateway_user" "$var_gateway"
  say "moved the dashboard store to $var_gateway and updated $conf (was: $conf.reman-old)"
}

install_models() {
  local model found=0
  for model in "$source_dir"/models/*.onnx "$source_dir"/models/*.card.json; do
    [ -f "$model" ] || continue
    install_file "$model" "$opt/models/$(basename "$model")" 0644
    found=1
  done
  [ "$found" -eq 1 ] || say "warning: no models in $source_dir/models; put one in $opt/models"
}

build_venv() {
  local venv="$opt/venv"
  if [ -n "$root" ]; then
    say "skipped (--root): python3 -m venv $venv && pip install $source_dir"
    return
  fi
  if [ ! -x "$venv/bin/python" ]; then
    if [ "$system_opencv" -eq 1 ]; then
      python3 -m venv --system-site-packages "$venv"
    else
      python3 -m venv "$venv"
    fi
  fi
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q --upgrade "$source_dir"
  if [ "$system_opencv" -eq 1 ]; then
    # Debian's OpenCV has GStreamer (libcamerasrc, nvarguscamerasrc); the wheel does not. Its
    # cv2 is built against NumPy 1.x, so NumPy stays below 2 in this venv.
    "$venv/bin/python" -m pip uninstall -q -y opencv-python-headless
    "$venv/bin/python" -m pip install -q "numpy>=1.26,<2"
  fi
  say "venv ready: $("$venv/bin/reman" --version)"
}

# A broker user whose password is the secret file's: set once, and again when the secret
# changed (mosquitto_passwd salts anew each time, so setting it on every run would rewrite the
# password file and reload the broker for nothing).
mosquitto_user() {
  local user=$1 secret=$2 passwd=$3 key="mosquitto-user:$1" digest
  changed=0
  digest=$(sha256_of "$secret")
  if [ "$(state_get "$key")" = "$digest" ] && { [ -n "$root" ] || grep -q "^$user:" "$passwd"; }; then
    return
  fi
  if [ -n "$root" ]; then
    say "skipped (--root): mosquitto_passwd -b $passwd $user <$secret>"
  else
    mosquitto_passwd -b "$passwd" "$user" "$(cat "$secret")"
    say "set the password of broker user $user"
  fi
  state_set "$key" "$digest"
  changed=1
}

install_mosquitto() {
  local conf="$source_dir/deploy/raspberrypi/mosquitto/reman.conf"
  local acl="$source_dir/deploy/raspberrypi/mosquitto/acl"
  local passwd="$mosq/reman.passwd" user
  if [ ! -f "$conf" ]; then
    say "warning: $conf is missing; mosquitto keeps its own configuration"
    return
  fi
  install_conffile "$conf" "$mosq/conf.d/reman.conf" 0644
  broker_restart=$changed
  if [ -f "$acl" ]; then
    install_conffile "$acl" "$mosq/reman.acl" 0644
    broker_reload=$changed
  fi
  if [ ! -e "$passwd" ]; then
    install -m 0640 /dev/null "$passwd"
    system chgrp mosquitto "$passwd"
    say "created $passwd"
  fi
  # The station's broker user is the mqtt.username of its config.
  user=$(sed -n '/^mqtt:/,/^[^ #]/s/^  username: *\([^ #]*\).*/\1/p' "$etc/station.yaml")
  mosquitto_user "${user:-station}" "$etc/mqtt-password" "$passwd"
  if [ "$changed" -eq 1 ]; then broker_reload=1; fi
  mosquitto_user gateway "$etc/gateway-mqtt-password" "$passwd"
  if [ "$changed" -eq 1 ]; then broker_reload=1; fi
  make_broker_certs
  if [ "$changed" -eq 1 ]; then broker_restart=1; fi
}

# The names a client may reach the broker by: the host name (and NAME.local, mDNS), localhost,
# 127.0.0.1, every address of the host (a PLC usually connects by IP) and each --san.
broker_names() {
  local host address
  host=$(hostname)
  printf 'DNS:%s\nDNS:%s.local\nDNS:localhost\nIP:127.0.0.1\n' "$host" "$host"
  for address in $(host_addresses); do
    echo "IP:$address"
  done
  if [ "${#sans[@]}" -gt 0 ]; then printf '%s\n' "${sans[@]}"; fi
}

# Every address of the host but loopback and IPv6 link-local ones.
host_addresses() {
  hostname -I 2> /dev/null ||
    ip -o addr show scope global 2> /dev/null | awk '{ sub(/\/.*/, "", $4); print $4 }'
}

# True when certs/server.crt is one this script issued: signed by the local CA, whose key is
# here. A plant's own certificate is never touched.
issued_locally() {
  local certs=$1
  [ -e "$certs/ca.key" ] &&
    openssl x509 -noout -subject -in "$certs/ca.crt" 2> /dev/null | grep -q "reman-edge station CA" &&
    openssl verify -CAfile "$certs/ca.crt" "$certs/server.crt" > /dev/null 2>&1
}

# The TLS listener (8883) needs a server certificate: a local CA (made once) and a server
# certificate signed by it. It is issued again, from the same CA and key, when a name is missing
# from it (a new address, a new --san); names it had are kept. Clients (PLCs, a remote
# dashboard) trust certs/ca.crt.
make_broker_certs() {
  local certs="$mosq/certs" issued="" wanted
  changed=0
  if [ -e "$certs/server.crt" ] && ! issued_locally "$certs"; then
    say "kept existing $certs/server.crt (not issued by the local CA)"
    return
  fi
  if [ -e "$certs/server.crt" ]; then issued=$(state_get broker-san); fi
  wanted=$({ broker_names; tr ',' '\n' <<< "$issued"; } | sed '/^$/d' | sort -u | paste -s -d , -)
  if [ -n "$issued" ] && [ "$wanted" = "$issued" ]; then
    say "unchanged $certs/server.crt"
    return
  fi
  install -d -m 0755 "$certs"
  if [ ! -e "$certs/ca.key" ] || [ ! -e "$certs/ca.crt" ]; then make_local_ca "$certs"; fi
  issue_server_cert "$certs" "$wanted"
  state_set broker-san "$wanted"
  changed=1
  say "issued $certs/server.crt for $wanted (clients trust $certs/ca.crt)"
}

make_local_ca() {
  local certs=$1
  (
    umask 077
    printf '%s\n' "basicConstraints=critical,CA:TRUE,pathlen:0" "keyUsage=critical,keyCertSign,cRLSign" \
      "subjectKeyIdentifier=hash" > "$certs/ca.ext"
    openssl req -new -newkey rsa:2048 -nodes -subj "/CN=reman-edge station CA ($(hostname))" \
      -keyout "$certs/ca.key" -out "$certs/ca.csr" 2> /dev/null
    openssl x509 -req -in "$certs/ca.csr" -signkey "$certs/ca.key" -days 3650 -extfile "$certs/ca.ext" \
      -out "$certs/ca.crt" 2> /dev/null
    rm -f "$certs/ca.csr" "$certs/ca.ext"
  )
  chmod 0644 "$certs/ca.crt"
  chmod 0600 "$certs/ca.key"
}

# The server certificate for the names in $2 (comma-separated SAN entries); its key is kept.
issue_server_cert() {
  local certs=$1 names=$2 key=()
  if [ -e "$certs/server.key" ]; then key=(-key "$certs/server.key"); else key=(-newkey rsa:2048 -nodes -keyout "$certs/server.key"); fi
  (
    umask 077
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid,issuer" \
      "subjectAltName=$names" > "$certs/server.ext"
    openssl req -new "${key[@]}" -subj "/CN=$(hostname)" -out "$certs/server.csr" 2> /dev/null
    openssl x509 -req -in "$certs/server.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" -CAcreateserial \
      -days 3650 -extfile "$certs/server.ext" -out "$certs/server.crt" 2> /dev/null
    rm -f "$certs/server.csr" "$certs/server.ext" "$certs/ca.srl"
  )
  chmod 0644 "$certs/server.crt"
  chmod 0640 "$certs/server.key"
  system chgrp mosquitto "$certs/server.key"
}

install_units() {
  local unit units_changed=0
  for unit in reman-node.service reman-gateway.service; do
    install_file "$script_dir/$unit" "$units/$unit" 0644
    if [ "$changed" -eq 1 ]; then units_changed=1; fi
  done
  if [ "$units_changed" -eq 1 ]; then system systemctl daemon-reload; fi
  system systemctl enable mosquitto reman-node reman-gateway
  if [ "$broker_restart" -eq 1 ]; then
    system systemctl restart mosquitto
  elif [ "$broker_reload" -eq 1 ]; then
    system systemctl reload-or-restart mosquitto
  else
    say "mosquitto's files are unchanged: not restarted"
  fi
  if [ "$start" -eq 1 ]; then
    system systemctl restart reman-node reman-gateway
  else
    say "edit $etc/station.yaml, then: systemctl start reman-node reman-gateway"
  fi
}

say "installing from $source_dir${root:+ into $root}"
install_packages
ensure_users
make_folders
install_config
install_models
build_venv
install_mosquitto
install_units
say "done"
