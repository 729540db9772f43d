# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# A private exim for the mail tests (Debian exim4-daemon-light): its own config, spool, log and
# maildirs under a directory of the test's temp dir, on a free 127.0.0.1 port, in the
# foreground (the lib.sh trap kills it; the system's exim, if any, is never used).
# Source it after lib.sh:
#   . "$(dirname "$0")/exim.sh"
#   exim_require                 # SKIP (exit 0) when exim is not installed
#   EXIM_CERT=crt EXIM_KEY=key   # optional: STARTTLS with this certificate, AUTH PLAIN
#                                # (wpuser / s3cret) offered only after it
#   exim_start DIR [PORT]        # sets EXIM_DIR, EXIM_PORT, PIDS[exim]; a free port if none
#   exim_stop                    # waits for exim's delivery children, SIGTERM, exit status 0
#   exim_count USER              # mails delivered to USER's maildir (DIR/maildir/USER/new)
# It accepts mail for alice@wp.test and bob@wp.test only (delivered to DIR/maildir/USER);
# every other local part is refused at RCPT with 550, "busy" deferred with 451. Switches:
#   DIR/defer-rcpt exists: every RCPT is deferred with 451;
#   DIR/defer-data exists: every message is deferred with 451 after its data was sent, and
#     logged ("deferred-data to=RCPTS mid=MESSAGE-ID size=N body=SHA256", the body with
#     newlines as spaces, as exim's $message_body).

EXIM=$(command -v exim4 || command -v exim || true)

exim_require() {
    [ -n "$EXIM" ] || { echo "SKIP: exim4 is not installed (scripts/deps.sh installs it)"; exit 0; }
}

# exim's processes using this config, the daemon excepted (receiving and delivery children)
exim_busy() {
    local p
    for p in /proc/[0-9]*; do
        [ "${p#/proc/}" != "${PIDS[exim]:-}" ] || continue
        tr '\0' ' ' 2> /dev/null < "$p/cmdline" | grep -qF -- "-C $EXIM_DIR/exim.conf" && return 0
    done
    return 1
}

exim_count() {
    find "$EXIM_DIR/maildir/$1/new" -type f 2> /dev/null | wc -l
}

exim_start() {
    local e=$1
    EXIM_DIR=$e
    EXIM_PORT=${2:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
    # Exim gives up root for a -C config and runs as its own user, so that user owns its files.
    if [ "$(id -u)" -eq 0 ]; then
        EXIM_USER=$(id -un Debian-exim 2>/dev/null || id -un exim 2>/dev/null || echo mail)
    else
        EXIM_USER=$(id -un)
    fi
    EXIM_GROUP=$(id -gn "$EXIM_USER")
    chmod 711 "$T"
    mkdir -p "$e/spool" "$e/log" "$e/maildir"
    local tls="tls_advertise_hosts ="
    if [ -n "${EXIM_CERT:-}" ]; then
        cp "$EXIM_CERT" "$e/localhost.crt"
        cp "$EXIM_KEY" "$e/localhost.key"
        tls="tls_advertise_hosts = *
tls_certificate = $e/localhost.crt
tls_privatekey = $e/localhost.key"
    fi
    chown -R "$EXIM_USER:$EXIM_GROUP" "$e"
    [ ! -f "$e/localhost.key" ] || chmod 600 "$e/localhost.key"
    # the config stays the invoking user's: exim refuses a -C file its own user could change
    rm -f "$e/exim.conf"
    cat > "$e/exim.conf" <<CONF
primary_hostname = mx.wp.test
qualify_domain = wp.test
domainlist local_domains = wp.test
daemon_smtp_ports = $EXIM_PORT
local_interfaces = <; 127.0.0.1
spool_directory = $e/spool
log_file_path = $e/log/%slog
pid_file_path = $e/exim.pid
exim_user = $EXIM_USER
exim_group = $EXIM_GROUP
never_users = root
host_lookup =
rfc1413_query_timeout = 0s
keep_environment =
acl_smtp_rcpt = acl_rcpt
acl_smtp_data = acl_data
message_body_visible = 1M
$tls

begin acl
acl_rcpt:
  defer  condition = \${if exists{$e/defer-rcpt}}
         message = service busy, try again later
  defer  local_parts = busy
         message = mailbox busy, try again later
  accept hosts = 127.0.0.1
         domains = +local_domains
         verify = recipient
  deny   message = unknown user or relay not permitted

acl_data:
  defer  condition = \${if exists{$e/defer-data}}
         logwrite = deferred-data to=\$recipients mid=\$h_message-id: size=\$message_size body=\${sha256:\$message_body}
         message = queue full, try again later
  accept

begin routers
local_maildir:
  driver = accept
  domains = +local_domains
  local_parts = alice : bob
  transport = maildir_delivery

begin transports
maildir_delivery:
  driver = appendfile
  directory = $e/maildir/\$local_part_data
  maildir_format
  create_directory
  envelope_to_add
  return_path_add
  user = $EXIM_USER
  group = $EXIM_GROUP
  mode = 0600

begin retry
*  *  F,5m,1m

begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = \${if and {{eq{\$auth2}{wpuser}}{eq{\$auth3}{s3cret}}}}
  server_set_id = \$auth2
  server_advertise_condition = \${if def:tls_in_cipher}
CONF
    "$EXIM" -C "$e/exim.conf" -bV > "$T/exim-check.log" 2>&1 ||
        { cat "$T/exim-check.log"; fail "exim refused the config"; }
    local before
    before=$(grep -c "daemon started" "$e/log/mainlog" 2> /dev/null || true)
    # -bdf: the daemon stays in the foreground, so the trap can kill and wait for it
    "$EXIM" -C "$e/exim.conf" -bdf -oX "$EXIM_PORT" >> "$T/exim.log" 2>&1 &
    PIDS[exim]=$!
    _exim_started() { [ "$(grep -c "daemon started" "$e/log/mainlog" 2> /dev/null)" -gt "${before:-0}" ]; }
    wait_for 20 "exim listening on port $EXIM_PORT" _exim_started
    log "exim on 127.0.0.1:$EXIM_PORT (user $EXIM_USER)"
}

# Let the daemon's delivery and receiving children finish, so none outlives it, then stop it.
# A client that keeps an SMTP connection open keeps a receiving child: close it first.
exim_stop() {
    _exim_idle() { ! exim_busy; }
    wait_for 20 "exim's delivery processes to finish" _exim_idle
    stop exim
}
