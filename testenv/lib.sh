# shellcheck shell=bash
# Shared helpers for the testenv scripts. Source it; do not run it.
#
# Every service keeps its logs, pid files and data under one state folder:
#   $PREMISCALE_TESTENV_DIR, or $REPO/.testenv by default (git-ignored).
# A service that testenv did not start is used as it is and never stopped by testenv/down.

TESTENV_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$TESTENV_DIR/.." && pwd)"
STATE="${PREMISCALE_TESTENV_DIR:-$REPO/.testenv}"
mkdir -p "$STATE"
STATE="$(cd "$STATE" && pwd)"

# Go-built tools (temporal, influxd) live in $(go env GOPATH)/bin, often not on PATH.
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
	PATH="$PATH:/usr/local/go/bin"
fi
if command -v go >/dev/null 2>&1; then
	PATH="$PATH:$(gobin_dir="$(go env GOBIN)" && echo "${gobin_dir:-$(go env GOPATH)/bin}")"
fi
export PATH

# Name shown in front of every message; each script sets its own.
TENV_NAME="${TENV_NAME:-testenv}"

log() { printf '[%s] %s\n' "$TENV_NAME" "$*"; }
warn() { printf '[%s] WARNING: %s\n' "$TENV_NAME" "$*" >&2; }
die() {
	printf '[%s] ERROR: %s\n' "$TENV_NAME" "$*" >&2
	exit 1
}

# die_with_log MESSAGE FILE: fail, showing the end of the service's log.
die_with_log() {
	local msg="$1" file="$2"
	printf '[%s] ERROR: %s\n' "$TENV_NAME" "$msg" >&2
	if [[ -f "$file" ]]; then
		printf '[%s] last 40 lines of %s:\n' "$TENV_NAME" "$file" >&2
		tail -n 40 "$file" | sed "s/^/[$TENV_NAME]   /" >&2
	fi
	exit 1
}

# lock NAME: hold an exclusive lock for the rest of the script, so two testenv runs
# at the same time (two shells, make -j) do not both build, install or start a service.
lock() {
	local file="$STATE/$1.lock"
	exec {TENV_LOCK_FD}>"$file"
	if ! flock -n "$TENV_LOCK_FD"; then
		log "another testenv run holds $file; waiting for it (up to 30 min)"
		flock -w 1800 "$TENV_LOCK_FD" || die "timed out waiting for $file"
	fi
}

# wait_for SECONDS DESCRIPTION COMMAND...: run COMMAND every second until it succeeds; say
# how long it took unless DESCRIPTION is empty.
wait_for() {
	local timeout="$1" what="$2"
	shift 2
	local deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			return 1
		fi
		sleep 1
	done
	[[ -z "$what" ]] || log "$what: ready after $((timeout - (deadline - SECONDS)))s"
}

# pid_alive PIDFILE: the pid in PIDFILE names a live process.
pid_alive() {
	local pid
	[[ -s "$1" ]] || return 1
	pid="$(cat "$1")"
	[[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# stop_pidfile NAME PIDFILE: TERM the process, wait up to 30 s, then KILL; remove the file.
stop_pidfile() {
	local name="$1" file="$2" pid i
	if ! pid_alive "$file"; then
		rm -f "$file"
		return 0
	fi
	pid="$(cat "$file")"
	log "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 30; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 1
	done
	if kill -0 "$pid" 2>/dev/null; then
		warn "$name (pid $pid) still running after 30s; sending KILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$file"
}

# close_locks: close testenv's lock fds in this (sub)shell. Bash does not mark them
# close-on-exec, and a daemon that inherits one holds the lock for as long as it runs.
close_locks() {
	[[ -z "${TENV_LOCK_FD:-}" ]] || exec {TENV_LOCK_FD}>&-
	[[ -z "${TENV_APT_FD:-}" ]] || exec {TENV_APT_FD}>&-
	return 0
}

# nolock COMMAND...: run COMMAND (which may start a daemon) without testenv's lock fds.
nolock() { (close_locks && exec "$@"); }

# start_detached PIDFILE LOGFILE COMMAND...: start COMMAND in its own session, immune to
# the caller's exit and hangups (make, CI steps), and record its pid.
start_detached() {
	local pidfile="$1" logfile="$2"
	shift 2
	# The background subshell execs nohup, which execs setsid; in a script (no job control)
	# the child is no group leader, so setsid execs too: $! is the server's own pid.
	(close_locks && exec nohup setsid "$@") >>"$logfile" 2>&1 </dev/null &
	echo $! >"$pidfile"
}

# http_code URL: print the HTTP status code of a GET (000 when nothing answers).
http_code() {
	curl -s -o /dev/null -m 5 -w '%{http_code}' "$1" 2>/dev/null || true
}

# --- Debian packages -------------------------------------------------------------------

# What testenv/mariadb and testenv/libvirt install (testenv/up installs both in one go).
# shellcheck disable=SC2034 # used by the scripts that source this file
MARIADB_PACKAGES=(mariadb-server mariadb-client)
# shellcheck disable=SC2034
LIBVIRT_PACKAGES=(libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils)

pkg_installed() {
	[[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

# apt_install PKG...: install the packages that are missing. apt-get update only when the
# install fails without it (a fresh machine's lists may be empty or stale).
apt_install() {
	local missing=() p
	for p in "$@"; do
		pkg_installed "$p" || missing+=("$p")
	done
	((${#missing[@]} == 0)) && return 0
	[[ "$(id -u)" == 0 ]] || die "need root to install ${missing[*]}"
	# One apt-get at a time from testenv (up runs services side by side): dpkg's lock has a
	# timeout below, the package lists' lock (apt-get update) does not.
	exec {TENV_APT_FD}>/tmp/.premiscale-testenv-apt.lock
	flock -w 1800 "$TENV_APT_FD" || die "timed out waiting for another testenv apt-get"
	missing=()
	for p in "$@"; do
		pkg_installed "$p" || missing+=("$p")
	done
	if ((${#missing[@]} == 0)); then
		exec {TENV_APT_FD}>&-
		unset TENV_APT_FD
		return 0
	fi
	log "installing ${missing[*]} (apt-get; this takes a minute or two)"
	local t0=$SECONDS
	local apt=(apt-get -o DPkg::Lock::Timeout=900 -o Acquire::Retries=3)
	export DEBIAN_FRONTEND=noninteractive
	local out="$STATE/apt.log"
	# Post-install scripts may start daemons (where policy-rc.d allows it): no lock fds.
	if ! nolock "${apt[@]}" install -y "${missing[@]}" >>"$out" 2>&1; then
		log "install failed; running apt-get update and retrying"
		nolock "${apt[@]}" update >>"$out" 2>&1 || die_with_log "apt-get update failed" "$out"
		nolock "${apt[@]}" install -y "${missing[@]}" >>"$out" 2>&1 ||
			die_with_log "apt-get install ${missing[*]} failed" "$out"
	fi
	exec {TENV_APT_FD}>&-
	unset TENV_APT_FD
	log "installed ${missing[*]} in $((SECONDS - t0))s"
}

# need_cmd CMD PKG: make sure CMD exists, installing PKG if it does not.
need_cmd() {
	command -v "$1" >/dev/null 2>&1 || apt_install "$2"
	command -v "$1" >/dev/null 2>&1 || die "$1 not found even after installing $2"
}

# --- Go-built tools ----------------------------------------------------------------------

gobin() {
	local d
	d="$(go env GOBIN)"
	[[ -n "$d" ]] || d="$(go env GOPATH)/bin"
	printf '%s\n' "$d"
}

# go_install_tool NAME PACKAGE@VERSION [ENV=VALUE...]: build a tool into $(gobin) unless it
# is there. A `go install` of the same package already running (a boot script, another
# shell) is waited for instead of started twice.
go_install_tool() {
	local name="$1" pkg="$2"
	shift 2
	local bin
	command -v go >/dev/null 2>&1 || die "go is not on PATH; install Go first"
	bin="$(gobin)/$name"
	[[ -x "$bin" ]] && return 0
	need_cmd pgrep procps
	# The module proxy is HTTPS: Go needs the system's CA roots.
	apt_install ca-certificates
	local waited=0
	while pgrep -f "go install ${pkg%@*}" >/dev/null 2>&1; do
		if ((waited == 0)); then
			log "a 'go install ${pkg%@*}' is already running; waiting for it (up to 20 min)"
		fi
		if ((waited >= 1200)); then
			die "the running 'go install ${pkg%@*}' did not finish in 20 min"
		fi
		sleep 5
		waited=$((waited + 5))
	done
	[[ -x "$bin" ]] && return 0
	local out="$STATE/build-$name.log"
	log "building $name: go install $pkg (minutes on 2 cores; output in $out)"
	local start=$SECONDS
	if ! (cd /tmp && env "$@" go install "$pkg") >"$out" 2>&1; then
		die_with_log "go install $pkg failed" "$out"
	fi
	[[ -x "$bin" ]] || die "go install $pkg succeeded but $bin is missing"
	log "built $bin in $((SECONDS - start))s"
}
