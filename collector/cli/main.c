/* SPDX-License-Identifier: Apache-2.0 */
/* watchpost: the command-line tool (certificates, config checks, queries, status). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"ca", cli_ca, "ca init|issue NAME|revoke NAME|list   certificate authority for the fleet"},
    {"check-config", cli_check_config, "check-config FILE                  validate a config file"},
    {"config-reference", cli_config_reference,
     "config-reference                   print docs/CONFIG.md (every option)"},
    {"query", cli_query, "query --host H --metric M [--since 1h]  print stored values"},
    {"status", cli_status, "status [--state-dir DIR]           the running collector's counters"},
    {"rules", cli_rules, "rules test FILE... [--at TIME]     what the rules would fire on stored data"},
    {"reload", cli_reload, "reload [--state-dir DIR]           reload the running collector's rules"},
    {"lines", cli_lines, "lines [list|history] [--host H] [--group G] [--state S]  line states"},
    {"seats", cli_seats, "seats [--host H] [--since 24h] [--csv]  seat sessions and pauses"},
    {"checks", cli_checks,
     "checks [--host H] [--status problem|critical|...] [--csv]  latest check results"},
    {"logevents", cli_logevents,
     "logevents [--host H] [--since 24h] [--rule R] [--limit N] [--csv]  stored log events"},
    {"outbox", cli_outbox, "outbox [list|retry ID] [--state dead]  notifications sent, queued, dead"},
    {"report", cli_report, "report weekly|monthly|inspection|incident ID --out DIR  reports"},
    {"incidents", cli_incidents, "incidents list|show ID|ack|resolve|close  incidents"},
    {"maintenance", cli_maintenance,
     "maintenance add NAME --hosts H --for 2h|list|end ID  maintenance windows"},
    {"user", cli_user, "user add NAME --role R|passwd|role|list|del  dashboard users"},
    {"token", cli_token, "token add NAME --role R|list|del    API tokens for scripts"},
    {"enroll-token", cli_enroll_token,
     "enroll-token add [--ttl 24h] [--name ID]|list|del ID  agent bootstrap tokens"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: watchpost COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        fprintf(f, "  %s\n", commands[i].help);
    }
    fprintf(f, "  version\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("watchpost %s\n", WP_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            return commands[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "watchpost: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
}
