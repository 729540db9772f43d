/* SPDX-License-Identifier: Apache-2.0 */
/* The ami probe's incremental Asterisk Manager Interface message parser (internal to the
 * probe; exported for its tests and the fuzz target). */
#ifndef WP_PROBES_AMI_H
#define WP_PROBES_AMI_H

#include <stddef.h>

#define WP_AMI_LINE_MAX (8u << 10)  /* bytes of one line, line end excluded */
#define WP_AMI_MSG_MAX  (64u << 10) /* bytes of one message, line ends included */
#define WP_AMI_KEYS_MAX 1024        /* "Key: Value" lines of one message */

/*
 * One message: nkeys "Key: Value" lines in wire order (keys may repeat; compare them with
 * wp_ami_get, case-insensitively). banner is non-NULL (and nkeys 0) for the server's first
 * line, "Asterisk Call Manager/x.y.z". Valid only during the callback.
 */
struct wp_ami_msg {
    const char *banner;
    size_t nkeys;
    const char *key[WP_AMI_KEYS_MAX];
    const char *val[WP_AMI_KEYS_MAX];
};

/* Called for each complete message; a negative return stops the feed, which returns it. */
typedef int (*wp_ami_msg_fn)(void *arg, const struct wp_ami_msg *m);

/*
 * Parser state: caller-owned storage, wp_ami_parser_init() / wp_ami_parser_cleanup().
 * Fields are private.
 */
struct wp_ami_parser {
    char *buf;         /* the current message, WP_AMI_MSG_MAX + 1 bytes */
    size_t len;        /* bytes of buf in use */
    size_t line_start; /* offset of the current (incomplete) line in buf */
    size_t nkeys;
    size_t koff[WP_AMI_KEYS_MAX]; /* offsets of keys and values in buf */
    size_t voff[WP_AMI_KEYS_MAX];
    int want_banner; /* the next line is the banner */
    int err;         /* sticky error: once set, every feed returns it */
    struct wp_ami_msg msg;
};

/* Set up p; with banner != 0 the first line is taken as the banner. Any thread. */
void wp_ami_parser_init(struct wp_ami_parser *p, int banner);

/* Forget any partial message and errors (for a new connection); banner as in init. */
void wp_ami_parser_reset(struct wp_ami_parser *p, int banner);

/* Release p's buffer. */
void wp_ami_parser_cleanup(struct wp_ami_parser *p);

/*
 * Feed len bytes (any split of the stream: lines and messages may straddle calls). Calls
 * fn for each message completed. Lines end in LF or CRLF; a message ends with an empty
 * line; empty lines between messages are skipped. Returns the number of messages
 * delivered, WP_ETOOBIG for a line over WP_AMI_LINE_MAX, a message over WP_AMI_MSG_MAX or
 * more than WP_AMI_KEYS_MAX keys, WP_EPROTO for a NUL byte, or fn's negative return. An
 * error is sticky until wp_ami_parser_reset().
 */
int wp_ami_parse_feed(struct wp_ami_parser *p, const char *buf, size_t len, wp_ami_msg_fn fn,
                      void *arg);

/* The value of the first key named key (case-insensitive) in m, or NULL. */
const char *wp_ami_get(const struct wp_ami_msg *m, const char *key);

#endif
