#!/usr/bin/env bash
# Install reman-edge as services on a Raspberry Pi 5 (Raspberry Pi OS Bookworm, 64-bit), a Jetson
# (JetPack 6, Ubuntu 22.04) or any Debian 12 machine. Idempotent: run it again after `git pull`
# to update; configuration and secrets that exist are never overwritten.
#
#   sudo deploy/raspberrypi/install.sh [--start] [--system-opencv] [--source DIR]
#   deploy/raspberrypi/install.sh --root DIR     # lay the files out under DIR only (tests, images)
#
# What it does:
#   Debian packages   mosquitto, mosquitto-clients, python3-venv, GStreamer (and libcamera on a Pi)
#   user              `reman`, a system user in the video (and render) group
#   /opt/reman        the virtual environment (venv/) with reman-edge installed, the models
#   /etc/reman        station.yaml, gateway.yaml, families/, generated secrets (never overwritten)
#   /var/lib/reman    journal, images, the dashboard's store (owned by reman)
#   systemd           reman-node.service, reman-gateway.service (enabled; started with --start)
#   mosquitto         authentication: conf.d/reman.conf, the ACL, a password file with the
#                     station's and the gateway's users, a local CA and server certificate for
#                     the TLS listener
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

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=${2:?--root needs a folder}; shift 2 ;;
    --root=*) root=${1#--root=}; shift ;;
    --source) source_dir=${2:?--source needs a folder}; shift 2 ;;
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
units="$root/etc/systemd/system"
mosq="$root/etc/mosquitto"

say() { echo "reman-install: $*"; }

# A step that changes the machine itself: run it, or in --root mode say that it was skipped.
system() {
  if [ -n "$root" ]; then
    say "skipped (--root): $*"
  else
    "$@"
  fi
}

# Install a file we own: replaced when it differs from the source.
install_file() {
  local src=$1 dst=$2 mode=$3
  if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
    say "unchanged $dst"
  else
    install -D -m "$mode" "$src" "$dst"
    say "installed $dst"
  fi
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

# A secret generated once: random, readable by root and the reman group only.
make_secret() {
  local dst=$1
  if [ -e "$dst" ]; then
    say "kept existing secret $dst"
    return
  fi
  (umask 027 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' > "$dst")
  chmod 0640 "$dst"
  system chgrp reman "$dst"
  say "created secret $dst"
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

ensure_user() {
  if [ -n "$root" ]; then
    say "skipped (--root): create system user reman (groups video, render)"
    return
  fi
  if ! getent passwd reman > /dev/null; then
    useradd --system --user-group --home-dir /var/lib/reman --no-create-home \
      --shell /usr/sbin/nologin --comment "reman-edge" reman
    say "created user reman"
  fi
  local group
  for group in video render; do
    if getent group "$group" > /dev/null; then
      usermod -a -G "$group" reman
    fi
  done
}

make_folders() {
  install -d -m 0755 "$opt" "$opt/models" "$units"
  install -d -m 0750 "$etc" "$etc/families" "$var" "$var/images" "$var/snapshots"
  system chgrp -R reman "$etc"
  system chown -R reman:reman "$var"
}

install_config() {
  local tmp family
  tmp=$(mktemp)
  # The example points at the checkout's models/; installed, the model lives in /opt/reman/models.
  sed -e 's#^\(  path: \)\.\./models/#\1/opt/reman/models/#' \
    "$source_dir/config/station.example.yaml" > "$tmp"
  install_once "$tmp" "$etc/station.yaml" 0640
  rm -f "$tmp"
  install_once "$source_dir/config/gateway.example.yaml" "$etc/gateway.yaml" 0640
  for family in "$source_dir"/config/families/*.yaml; do
    install_once "$family" "$etc/families/$(basename "$family")" 0640
  done
  make_secret "$etc/mqtt-password"
  make_secret "$etc/gateway-mqtt-password"
  make_secret "$etc/session-secret"
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

mosquitto_user() {
  local user=$1 secret=$2 passwd=$3
  if [ -n "$root" ]; then
    say "skipped (--root): mosquitto_passwd -b $passwd $user <$secret>"
    return
  fi
  mosquitto_passwd -b "$passwd" "$user" "$(cat "$secret")"
}

install_mosquitto() {
  local conf="$source_dir/deploy/raspberrypi/mosquitto/reman.conf"
  local acl="$source_dir/deploy/raspberrypi/mosquitto/acl"
  local passwd="$mosq/reman.passwd" user
  if [ ! -f "$conf" ]; then
    say "warning: $conf is missing; mosquitto keeps its own configuration"
    return
  fi
  install_file "$conf" "$mosq/conf.d/reman.conf" 0644
  if [ -f "$acl" ]; then
    install_file "$acl" "$mosq/reman.acl" 0644
  fi
  if [ ! -e "$passwd" ]; then
    install -m 0640 /dev/null "$passwd"
    system chgrp mosquitto "$passwd"
    say "created $passwd"
  fi
  # The station's broker user is the mqtt.username of its config.
  user=$(sed -n '/^mqtt:/,/^[^ #]/s/^  username: *\([^ #]*\).*/\1/p' "$etc/station.yaml")
  mosquitto_user "${user:-station}" "$etc/mqtt-password" "$passwd"
  mosquitto_user gateway "$etc/gateway-mqtt-password" "$passwd"
  make_broker_certs
}

# The TLS listener (8883) needs a server certificate: a local CA and a server certificate signed
# by it, made once. Clients (PLCs, a remote dashboard) trust certs/ca.crt. Replace both with the
# plant's own certificates when it has a PKI; existing files are never touched.
make_broker_certs() {
  local certs="$mosq/certs" host
  if [ -e "$certs/server.crt" ]; then
    say "kept existing $certs/server.crt"
    return
  fi
  host=$(hostname)
  install -d -m 0755 "$certs"
  (
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=reman-edge station CA ($host)" \
      -keyout "$certs/ca.key" -out "$certs/ca.crt" 2> /dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$host" \
      -keyout "$certs/server.key" -out "$certs/server.csr" 2> /dev/null
    printf 'subjectAltName=DNS:%s,DNS:%s.local,DNS:localhost,IP:127.0.0.1\n' "$host" "$host" > "$certs/server.ext"
    openssl x509 -req -in "$certs/server.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" -CAcreateserial \
      -days 3650 -extfile "$certs/server.ext" -out "$certs/server.crt" 2> /dev/null
    rm -f "$certs/server.csr" "$certs/server.ext" "$certs/ca.srl"
  )
  chmod 0644 "$certs/ca.crt" "$certs/server.crt"
  chmod 0640 "$certs/server.key"
  system chgrp mosquitto "$certs/server.key"
  say "created a local CA and server certificate in $certs (clients trust $certs/ca.crt)"
}

install_units() {
  install_file "$script_dir/reman-node.service" "$units/reman-node.service" 0644
  install_file "$script_dir/reman-gateway.service" "$units/reman-gateway.service" 0644
  system systemctl daemon-reload
  system systemctl enable mosquitto reman-node reman-gateway
  system systemctl restart mosquitto
  if [ "$start" -eq 1 ]; then
    system systemctl restart reman-node reman-gateway
  else
    say "edit $etc/station.yaml, then: systemctl start reman-node reman-gateway"
  fi
}

say "installing from $source_dir${root:+ into $root}"
install_packages
ensure_user
make_folders
install_config
install_models
build_venv
install_mosquitto
install_units
say "done"
