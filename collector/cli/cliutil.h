/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers shared by `watchpost` subcommands: times, CSV for Excel, the state dir. */
#ifndef WP_CLI_CLIUTIL_H
#define WP_CLI_CLIUTIL_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct coll_conf;

/* The options the subcommands that read the state dir share: end a longopts table with
 * CLI_STD_LONGOPTS (after CLI_CSV_LONGOPTS for a command that prints a table), give
 * getopt_long the short options "c:h" and let cli_std_opt() take them. */
/* clang-format off */
#define CLI_CSV_LONGOPTS {"format", required_argument, NULL, 'f'}, {"csv", no_argument, NULL, 'C'}
#define CLI_STD_LONGOPTS                                                                           \
    {"state-dir", required_argument, NULL, 'd'}, {"config", required_argument, NULL, 'c'},        \
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}
/* clang-format on */

struct cli_std {
    const char *cmd;          /* the subcommand, for messages: "seats" */
    const char *dir, *config; /* --state-dir DIR, -c/--config FILE */
    int csv;                  /* --csv or --format csv */
};

/* Take getopt_long's o (with optarg arg) when it is a shared option or an error, as the
 * default: of the caller's switch. Returns -1 when the caller goes on (--state-dir, --config,
 * --csv, --format text|csv), 0 after printing usage to stdout (--help), 2 after printing it
 * (or what --format takes) to stderr: return that from the subcommand. */
int cli_std_opt(struct cli_std *s, int o, const char *arg, void (*usage)(FILE *f));
/* STATE_DIR/file, the state dir from cli_state_dir(s->config, s->dir, conf): a heap copy (free
 * with free()), or NULL after printing the config error, or "CMD: no FILE in DIR: why" when
 * the file is not there. */
char *cli_store_path(const struct cli_std *s, struct coll_conf **conf, const char *file,
                     const char *why);
/* --since: a duration back from now_ms ("24h", "7d") or a local time "YYYY-MM-DD",
 * "YYYY-MM-DDTHH:MM" or "YYYY-MM-DD HH:MM". 0 with *out in ms, or -1. */
int cli_parse_since(const char *s, int64_t now_ms, int64_t *out);

/* Local time, ISO 8601 with the offset: 2026-03-01T14:05:09+08:00; "-" for 0. */
const char *cli_iso_local(int64_t ms, char *buf, size_t n);
/* Local time for text tables: 2026-03-01 14:05; "-" for 0. */
const char *cli_short_local(int64_t ms, char *buf, size_t n);
/* One CSV field on stdout, quoted, "," after it or CRLF when last. Text Excel would run as a
 * formula (= + - @ tab CR first) gets a leading '. */
void cli_csv_field(const char *s, int last);
/* The UTF-8 byte order mark, so that Excel reads a CSV file as UTF-8. */
void cli_csv_bom(void);
/* The BOM and a header row of the column names (NULL-terminated). */
void cli_csv_head(const char *const *names);
/* The state directory from -c CONFIG (loaded into *conf, free it with coll_conf_free), else
 * dir, else $WATCHPOST_STATE_DIR, else /var/lib/watchpost. NULL after printing the config
 * error. */
const char *cli_state_dir(const char *config, const char *dir, struct coll_conf **conf);

#endif
