#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what it needs, type-checks and lints the
# code, then runs pytest.
#   bash tests/run.sh            # everything
#   bash tests/run.sh -k chat    # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

# Debian packages: Apache (CGI tests) and its mod_passenger (the cPanel "Setup Python App"
# deployment: altws cgi-server --passenger), the browser engines (browser tests: Chromium, Firefox
# ESR, and WebKit's MiniBrowser driven by WebKitWebDriver on an Xvfb screen), tmux (terminal
# client tests), python3-venv (the CGI's own venv is built from Debian's /usr/bin/python3),
# PostgreSQL and MariaDB servers and clients (benchmarks/databases.py starts private servers of its
# own on free ports: any system instance the packages start is left alone and not used).
missing=()
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
[ -x /usr/sbin/mariadbd ] && [ -x /usr/bin/mariadb-install-db ] || missing+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || missing+=(mariadb-client)
[ -x /usr/sbin/apache2 ] || missing+=(apache2)
[ -f /usr/lib/apache2/modules/mod_passenger.so ] || missing+=(libapache2-mod-passenger)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/firefox-esr ] || missing+=(firefox-esr)
[ -x /usr/bin/WebKitWebDriver ] || missing+=(webkit2gtk-driver)
compgen -G '/usr/lib/*/webkit2gtk-4.*/MiniBrowser' >/dev/null || missing+=(libwebkit2gtk-4.1-0)
[ -x /usr/bin/Xvfb ] || missing+=(xvfb)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

say "Python environment (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

# The CGI's own Python (a venv of Debian's /usr/bin/python3 that www-data can read), built
# once here rather than inside the first CGI test's start-up wait.
say "the CGI's Python (/var/tmp/altws)"
.venv/bin/python -c "from altwebsocket.cgiserver import cgi_python; print(cgi_python('/var/tmp/altws'))"

# TypeScript, to type-check the browser client's declarations (static/altwebsocket.d.ts).
if [ ! -x .venv/node/node_modules/.bin/tsc ]; then
  say "installing TypeScript (npm) into .venv/node"
  npm install --silent --no-audit --no-fund --prefix .venv/node typescript@5 >/dev/null
fi
export ALTWS_TSC="$PWD/.venv/node/node_modules/.bin/tsc"
# Socket.IO 4, the peer `altws bench --local` measures beside the emulation (benchmarks/peers.py)
if [ ! -f .venv/node/node_modules/socket.io/package.json ]; then
  say "installing Socket.IO (npm) into .venv/node"
  npm install --silent --no-audit --no-fund --prefix .venv/node socket.io@4 >/dev/null
fi

# Autobahn|Testsuite (the WebSocket fuzzing client run against the daemon) is Python 2 only:
# these machines carry pyenv's Python 2.7.18. Built once, kept in /opt/altws-autobahn.
AB=/opt/altws-autobahn
if [ ! -x "$AB/py2/bin/wstest" ]; then
  say "installing Autobahn|Testsuite into $AB (once)"
  py27=""
  for root in "$(pyenv root 2>/dev/null)" "${PYENV_ROOT:-}" "$HOME/.pyenv" /root/.pyenv; do
    if [ -n "$root" ] && [ -x "$root/versions/2.7.18/bin/python" ]; then
      py27="$root/versions/2.7.18/bin/python"; break
    fi
  done
  if [ -z "$py27" ]; then
    echo "Python 2.7.18 (pyenv) is missing: the Autobahn test will fail" >&2
  else
    rm -rf "$AB"
    python3 -m venv "$AB/tools"
    "$AB/tools/bin/pip" install -q --disable-pip-version-check 'virtualenv<20.22'
    "$AB/tools/bin/virtualenv" -q -p "$py27" "$AB/py2"
    "$AB/py2/bin/pip" install -q --disable-pip-version-check autobahntestsuite
  fi
fi
[ -x "$AB/py2/bin/wstest" ] && export AUTOBAHN_WSTEST="$AB/py2/bin/wstest"

# The type check and the lint (their settings: [tool.mypy] and [tool.ruff] in pyproject.toml).
# Both run, then either failing fails the run before the tests start.
checks=0
say "type check (mypy --strict)"
.venv/bin/python -m mypy || checks=1
say "lint (ruff)"
.venv/bin/python -m ruff check app/altwebsocket tests || checks=1
if [ "$checks" -ne 0 ]; then
  echo "the type check or the lint failed (above): fix it before the tests run" >&2
  exit 1
fi

say "running the tests"
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "no tests ran: that is a failure" >&2
  exit 1
fi
exit "$status"
