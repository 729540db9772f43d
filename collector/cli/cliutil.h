/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers shared by `watchpost` subcommands: times, CSV for Excel, the state dir. */
#ifndef WP_CLI_CLIUTIL_H
#define WP_CLI_CLIUTIL_H

#include <stddef.h>
#include <stdint.h>

struct coll_conf;

/* Local time, ISO 8601 with the offset: 2026-03-01T14:05:09+08:00; "-" for 0. */
const char *cli_iso_local(int64_t ms, char *buf, size_t n);
/* Local time for text tables: 2026-03-01 14:05; "-" for 0. */
const char *cli_short_local(int64_t ms, char *buf, size_t n);
/* One CSV field on stdout, quoted, "," after it or CRLF when last. Text Excel would run as a
 * formula (= + - @ tab CR first) gets a leading '. */
void cli_csv_field(const char *s, int last);
/* The UTF-8 byte order mark, so that Excel reads a CSV file as UTF-8. */
void cli_csv_bom(void);
/* The state directory from -c CONFIG (loaded into *conf, free it with coll_conf_free), else
 * dir, else $WATCHPOST_STATE_DIR, else /var/lib/watchpost. NULL after printing the config
 * error. */
const char *cli_state_dir(const char *config, const char *dir, struct coll_conf **conf);

#endif
