/* SPDX-License-Identifier: Apache-2.0 */
/* Subcommands of the `watchpost` CLI; each takes argv starting at its own name. */
#ifndef WP_CLI_CLI_H
#define WP_CLI_CLI_H

/* watchpost ca init|issue|revoke|list (ca.c) */
int cli_ca(int argc, char **argv);
/* watchpost check-config FILE [--agent|--collector] (check.c) */
int cli_check_config(int argc, char **argv);
/* watchpost query --host H --metric M [--since 1h] (query.c) */
int cli_query(int argc, char **argv);
/* `watchpost config-reference`: docs/CONFIG.md from the option tables (confref.c). */
int cli_config_reference(int argc, char **argv);
/* watchpost status (status.c) */
int cli_status(int argc, char **argv);
/* watchpost reload: rules files (status.c) */
int cli_reload(int argc, char **argv);
/* watchpost lines [list|history] (lines.c) */
int cli_lines(int argc, char **argv);
/* watchpost seats: seat sessions with their pauses (seats.c) */
int cli_seats(int argc, char **argv);
/* watchpost checks: the latest check results (checks.c) */
int cli_checks(int argc, char **argv);
/* watchpost logevents: the stored log events, newest first (checks.c) */
int cli_logevents(int argc, char **argv);
/* watchpost rules test FILE... --at TIME (rules.c) */
int cli_rules(int argc, char **argv);
/* watchpost incidents list|show|ack|resolve|close (incidents.c) */
int cli_incidents(int argc, char **argv);
/* `watchpost outbox`: notifications sent, queued and dead; retry a dead one. */
int cli_outbox(int argc, char **argv);
/* watchpost maintenance add|list|end: runtime maintenance windows (maint.c) */
int cli_maintenance(int argc, char **argv);
/* watchpost report weekly|monthly|incident ID: health and fault reports (report.c) */
int cli_report(int argc, char **argv);
/* watchpost user add|passwd|role|list|del, token add|list|del: dashboard login (user.c) */
int cli_user(int argc, char **argv);
int cli_token(int argc, char **argv);
/* watchpost enroll-token add|list|del|prune: agent bootstrap tokens (enroll.c) */
int cli_enroll_token(int argc, char **argv);

#endif
