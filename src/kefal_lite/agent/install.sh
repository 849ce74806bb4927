#!/bin/sh
# Installs the kefal-lite agent from the kefal-lite server that served this script.
#
#   curl -fsSL SERVER/agent/install.sh | sudo sh -s -- --server SERVER --token kfe_...
#
# Debian/Ubuntu and the RHEL family (any Linux with python3 >= 3.10 and systemd).
# It makes a virtual environment (default /opt/kefal-agent), installs the agent from
# the server plus psutil and msgspec from the package index (pip), enrolls with the
# token, sends a first snapshot, then writes and starts a systemd service.
# Running it again upgrades in place and keeps the enrollment; --uninstall removes
# it all. No secret is in this file: the token comes from the command line.

set -eu

VERSION=@VERSION@
WHEEL=@WHEEL@
WHEEL_SHA256=@WHEEL_SHA256@
# Only a default (the address this script was fetched from): the install line
# passes --server explicitly.
SERVER=@SERVER@
TOKEN=""
PIN=""
NAME=""
PREFIX=/opt/kefal-agent
PYTHON=""
INTERVAL=60
SERVICE=1
UNINSTALL=0
UNIT=kefal-lite-agent
UNIT_FILE=/etc/systemd/system/$UNIT.service
MARKER=.kefal-agent

say() { printf 'kefal-agent: %s\n' "$*"; }
die() { printf 'kefal-agent: error: %s\n' "$*" >&2; exit 1; }

usage() {
    cat <<'EOF'
Usage: sh install.sh --server URL --token kfe_... [options]

  --server URL      the kefal-lite server (the install line fills it in)
  --token TOKEN     an enrollment token from the server's Agents page
                    (needed for the first install only)
  --pin sha256:HEX  accept exactly this server certificate (self-signed TLS)
  --name NAME       the agent's name on the server (default: the host name)
  --prefix DIR      where to install (default /opt/kefal-agent)
  --no-service      no systemd unit: install without root, run the agent yourself
  --python PATH     the Python to use (3.10 or newer; default: python3)
  --interval SEC    seconds between snapshots (default 60)
  --uninstall       stop and remove the service and the install directory
EOF
}

value() {
    # $1: the option, $2: how many arguments are left after it
    [ "$2" -ge 1 ] || die "$1 needs a value (see --help)"
}

parse() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --server) value "$1" $(($# - 1)); SERVER=$2; shift 2 ;;
            --token) value "$1" $(($# - 1)); TOKEN=$2; shift 2 ;;
            --pin) value "$1" $(($# - 1)); PIN=$2; shift 2 ;;
            --name) value "$1" $(($# - 1)); NAME=$2; shift 2 ;;
            --prefix) value "$1" $(($# - 1)); PREFIX=$2; shift 2 ;;
            --python) value "$1" $(($# - 1)); PYTHON=$2; shift 2 ;;
            --interval) value "$1" $(($# - 1)); INTERVAL=$2; shift 2 ;;
            --server=*) SERVER=${1#*=}; shift ;;
            --token=*) TOKEN=${1#*=}; shift ;;
            --pin=*) PIN=${1#*=}; shift ;;
            --name=*) NAME=${1#*=}; shift ;;
            --prefix=*) PREFIX=${1#*=}; shift ;;
            --python=*) PYTHON=${1#*=}; shift ;;
            --interval=*) INTERVAL=${1#*=}; shift ;;
            --no-service) SERVICE=0; shift ;;
            --uninstall) UNINSTALL=1; shift ;;
            -h|--help) usage; exit 0 ;;
            *) die "unknown option $1 (see --help)" ;;
        esac
    done
    case "$PREFIX" in
        /*) ;;
        *) PREFIX=$(pwd)/$PREFIX ;;
    esac
    PREFIX=${PREFIX%/}
    case "$PREFIX" in
        ""|*[!A-Za-z0-9/._+-]*) die "--prefix: use a path of letters, digits and / . _ + - only" ;;
    esac
    SERVER=${SERVER%/}
    case "$SERVER" in
        http://?*|https://?*) ;;
        *) die "--server: give the server's http:// or https:// URL, as on its Agents page" ;;
    esac
    case "$INTERVAL" in
        ''|*[!0-9]*) die "--interval takes whole seconds" ;;
    esac
    if [ -n "$PIN" ]; then
        case "$SERVER" in
            https://*) ;;
            *) die "--pin goes with an https:// server URL" ;;
        esac
    fi
}

uninstall() {
    if [ "$SERVICE" = 1 ] && [ -f "$UNIT_FILE" ]; then
        systemctl disable --now "$UNIT" >/dev/null 2>&1 || true
        rm -f "$UNIT_FILE"
        systemctl daemon-reload >/dev/null 2>&1 || true
        say "stopped and removed the $UNIT service"
    fi
    if [ -f "$PREFIX/$MARKER" ]; then
        rm -rf "$PREFIX"
        say "removed $PREFIX"
    elif [ -e "$PREFIX" ]; then
        die "$PREFIX has no $MARKER file, so this script did not make it: not removing it"
    else
        say "nothing installed in $PREFIX"
    fi
    say "the agent stays listed on the server until you revoke it on its Agents page"
}

find_python() {
    if [ -z "$PYTHON" ]; then
        for candidate in python3 python3.13 python3.12 python3.11 python3.10; do
            if command -v "$candidate" >/dev/null 2>&1 &&
                "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
                PYTHON=$(command -v "$candidate")
                break
            fi
        done
        [ -n "$PYTHON" ] || die "Python 3.10 or newer is needed. Debian/Ubuntu: apt-get install python3 python3-venv; RHEL 8: dnf install python3.11 (then --python /usr/bin/python3.11)"
    fi
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null ||
        die "$PYTHON is not Python 3.10 or newer"
    "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null ||
        die "$PYTHON cannot make virtual environments. Debian/Ubuntu: apt-get install python3-venv"
}

download() {
    # The agent comes from this same server. Python's own TLS, so that a --pin is
    # checked before anything is sent, like the agent does; no redirects followed.
    "$VENV_PY" - "$SERVER/agent/$WHEEL" "$PREFIX/$WHEEL" "$WHEEL_SHA256" "$PIN" <<'PY'
import hashlib, hmac, http.client, ssl, sys, urllib.parse
url, dest, want, pin = sys.argv[1:5]
def fail(message):
    sys.stderr.write("kefal-agent: error: " + message + "\n")
    sys.exit(1)
parts = urllib.parse.urlsplit(url)
try:
    if parts.scheme == "https":
        if pin:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = ssl.create_default_context()
        conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=60, context=context)
        conn.connect()
        if pin:
            got = "sha256:" + hashlib.sha256(conn.sock.getpeercert(binary_form=True)).hexdigest()
            wanted = "sha256:" + pin.lower().replace("sha256:", "", 1).replace(":", "")
            if not hmac.compare_digest(got, wanted):
                fail("the server's certificate is %s, not the pinned %s: stopping before"
                     " sending anything (another machine answers at this address?)" % (got, wanted))
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=60)
    conn.request("GET", parts.path, headers={"User-Agent": "kefal-lite-agent-install"})
    response = conn.getresponse()
    body = response.read()
except (OSError, http.client.HTTPException) as exc:
    fail("cannot download %s: %s" % (url, exc))
if response.status != 200:
    fail("%s answered HTTP %d; is that the server that served this script?" % (url, response.status))
if hashlib.sha256(body).hexdigest() != want:
    fail("the agent downloaded from %s does not match this script (the server was"
         " upgraded meanwhile, or something on the way changed it): run the install line again" % url)
with open(dest, "wb") as fh:
    fh.write(body)
PY
}

install() {
    if [ "$SERVICE" = 1 ]; then
        [ "$(id -u)" = 0 ] || die "installing the service needs root: run with sudo, or add --prefix DIR --no-service to install for this user without a service"
        command -v systemctl >/dev/null 2>&1 ||
            die "no systemd here: run again with --no-service, then start the agent another way"
    fi
    find_python
    CONFIG=$PREFIX/agent.json
    SPOOL=$PREFIX/spool
    VENV_PY=$PREFIX/venv/bin/python
    if [ -e "$PREFIX" ] && [ ! -f "$PREFIX/$MARKER" ] && [ -n "$(ls -A "$PREFIX")" ]; then
        die "$PREFIX is not empty and not a kefal agent install: choose another --prefix"
    fi
    [ -f "$CONFIG" ] || [ -n "$TOKEN" ] ||
        die "--token is needed for a first install: create one on the server's Agents page"
    umask 022
    mkdir -p "$PREFIX"
    printf '%s\n' "$VERSION" >"$PREFIX/$MARKER"
    if [ ! -x "$VENV_PY" ]; then
        "$PYTHON" -m venv "$PREFIX/venv" </dev/null || die "could not make a virtual environment in $PREFIX/venv"
        say "made a virtual environment in $PREFIX/venv ($("$VENV_PY" --version 2>&1))"
    fi
    download
    # psutil and msgspec from the package index (pip's configuration applies), then
    # the agent itself, replaced even when the version is unchanged.
    "$VENV_PY" -m pip install --quiet --disable-pip-version-check "psutil>=5.9" "msgspec>=0.18" </dev/null ||
        die "pip could not install psutil and msgspec: check this host's access to the package index (or its pip configuration)"
    "$VENV_PY" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$PREFIX/$WHEEL" </dev/null ||
        die "pip could not install $PREFIX/$WHEEL"
    rm -f "$PREFIX/$WHEEL"
    say "installed kefal-lite agent $VERSION from $SERVER"
    umask 077
    if [ -f "$CONFIG" ]; then
        if [ -n "$TOKEN" ]; then
            say "already enrolled ($CONFIG): kept that enrollment, the token was not used"
        else
            say "already enrolled ($CONFIG): kept that enrollment"
        fi
    else
        set -- enroll --server "$SERVER" --token-stdin --config "$CONFIG"
        [ -z "$PIN" ] || set -- "$@" --pin "$PIN"
        [ -z "$NAME" ] || set -- "$@" --name "$NAME"
        printf '%s\n' "$TOKEN" | "$VENV_PY" -m kefal_lite.agent "$@" ||
            die "enrollment failed (the server's answer is above); nothing was enrolled"
    fi
    if "$VENV_PY" -m kefal_lite.agent once --config "$CONFIG" --spool "$SPOOL" </dev/null; then
        say "the server received this host's first snapshot"
    else
        say "warning: the first snapshot did not go through (see above); the agent keeps it and retries"
    fi
    if [ "$SERVICE" = 1 ]; then
        "$VENV_PY" -m kefal_lite.agent unit --config "$CONFIG" --spool "$SPOOL" --interval "$INTERVAL" >"$UNIT_FILE.tmp" </dev/null
        chmod 644 "$UNIT_FILE.tmp"
        mv "$UNIT_FILE.tmp" "$UNIT_FILE"
        systemctl daemon-reload
        systemctl enable "$UNIT" >/dev/null 2>&1
        systemctl restart "$UNIT"
        say "wrote $UNIT_FILE; the $UNIT service is enabled and (re)started"
        say "logs: journalctl -u $UNIT    remove: this same line with --uninstall"
    else
        say "no service installed (--no-service); run the agent with:"
        say "  $VENV_PY -m kefal_lite.agent run --config $CONFIG --spool $SPOOL --interval $INTERVAL"
    fi
}

main() {
    parse "$@"
    if [ "$UNINSTALL" = 1 ]; then
        uninstall
    else
        install
    fi
}

# Everything above is only definitions: a script piped into sh runs only once the
# whole of it has arrived.
main "$@"
