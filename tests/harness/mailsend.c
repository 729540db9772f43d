/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mailsend: renders one incident event with notify_mail_render() and sends it over SMTP with
 * libcurl (the options the delivery worker uses), or writes the bytes to a file. For
 * tests/integration/test_mail_smtp.sh; not installed.
 *
 *   mailsend [--url smtp://127.0.0.1:PORT/ehlo-name] [--out FILE] --from ADDR --to ADDR...
 *            [--lang en|zh-CN] [--domain D] [--dashboard URL] [--id N] [--seq N]
 *            [--event open|escalate|ack|resolve|...] [--status S] [--prio N] [--summary S]
 *            [--host H] [--values JSON] [--event-id ID] [--time-ms MS]
 *            [--starttls] [--cacert FILE] [--user U --pass P] [--resolve HOST:PORT:ADDR]
 *            [--verbose]
 *
 * Exit status: 0 sent (or written), 1 usage or render error, 2 curl failed; the last SMTP
 * reply code is printed as "smtp_code=NNN".
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "notify.h"

#define MAX_TO 8

struct reader {
    const char *data;
    size_t len, off;
};

static size_t read_cb(char *buf, size_t size, size_t nitems, void *userp)
{
    struct reader *r = userp;
    size_t room = size * nitems;
    size_t n = r->len - r->off;

    if (n > room) {
        n = room;
    }
    memcpy(buf, r->data + r->off, n);
    r->off += n;
    return n;
}

/* The envelope form "<addr>" of "Name <addr>" or "addr"; free() it. */
static char *envelope(const char *s)
{
    const char *lt = strrchr(s, '<');
    const char *gt = lt != NULL ? strchr(lt, '>') : NULL;
    char *out = NULL;

    if (lt != NULL && gt != NULL) {
        out = strndup(lt, (size_t)(gt - lt) + 1);
    } else if (asprintf(&out, "<%s>", s) < 0) {
        out = NULL;
    }
    if (out == NULL) {
        fprintf(stderr, "mailsend: out of memory\n");
        exit(1);
    }
    return out;
}

static int send_mail(const char *url, const char *from, const char *const *to, const char *msg,
                     size_t len, const char *cacert, const char *user, const char *pass,
                     const char *resolve, int starttls, int verbose)
{
    CURL *c = curl_easy_init();
    struct curl_slist *rcpt = NULL;
    struct curl_slist *res = NULL;
    struct reader r = {msg, len, 0};
    char errbuf[CURL_ERROR_SIZE] = "";
    char *env_from = envelope(from);
    long code = 0;
    CURLcode cc;
    int rc = 0;

    if (c == NULL) {
        fprintf(stderr, "mailsend: curl_easy_init failed\n");
        free(env_from);
        return 2;
    }
    for (size_t i = 0; to[i] != NULL; i++) {
        char *e = envelope(to[i]);
        rcpt = curl_slist_append(rcpt, e);
        free(e);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, env_from);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(c, CURLOPT_READDATA, &r);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (starttls) {
        curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    }
    if (cacert != NULL) {
        curl_easy_setopt(c, CURLOPT_CAINFO, cacert);
    }
    if (user != NULL) {
        curl_easy_setopt(c, CURLOPT_USERNAME, user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, pass != NULL ? pass : "");
        curl_easy_setopt(c, CURLOPT_LOGIN_OPTIONS, "AUTH=PLAIN");
    }
    if (resolve != NULL) {
        /* a certificate for a name, the server on 127.0.0.1 only */
        res = curl_slist_append(res, resolve);
        curl_easy_setopt(c, CURLOPT_RESOLVE, res);
    }
    if (verbose) {
        curl_easy_setopt(c, CURLOPT_VERBOSE, 1L);
    }
    cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    printf("smtp_code=%ld\n", code);
    if (cc != CURLE_OK) {
        fprintf(stderr, "mailsend: %s: %s\n", curl_easy_strerror(cc),
                errbuf[0] != '\0' ? errbuf : "-");
        rc = 2;
    }
    curl_slist_free_all(rcpt);
    curl_slist_free_all(res);
    curl_easy_cleanup(c);
    free(env_from);
    return rc;
}

static void usage(void)
{
    fprintf(stderr, "usage: mailsend [--url URL | --out FILE] --from ADDR --to ADDR... "
                    "[options]; see the file header\n");
    exit(1);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"url", required_argument, NULL, 'u'},       {"out", required_argument, NULL, 'o'},
        {"from", required_argument, NULL, 'f'},      {"to", required_argument, NULL, 't'},
        {"lang", required_argument, NULL, 'l'},      {"domain", required_argument, NULL, 'd'},
        {"dashboard", required_argument, NULL, 'D'}, {"id", required_argument, NULL, 'i'},
        {"seq", required_argument, NULL, 's'},       {"event", required_argument, NULL, 'e'},
        {"status", required_argument, NULL, 'S'},    {"prio", required_argument, NULL, 'p'},
        {"summary", required_argument, NULL, 'm'},   {"host", required_argument, NULL, 'h'},
        {"values", required_argument, NULL, 'v'},    {"event-id", required_argument, NULL, 'E'},
        {"time-ms", required_argument, NULL, 'T'},   {"starttls", no_argument, NULL, 'L'},
        {"cacert", required_argument, NULL, 'c'},    {"user", required_argument, NULL, 'U'},
        {"pass", required_argument, NULL, 'P'},      {"verbose", no_argument, NULL, 'V'},
        {"resolve", required_argument, NULL, 'R'},   {NULL, 0, NULL, 0},
    };
    const char *to[MAX_TO + 1] = {NULL};
    size_t nto = 0;
    const char *url = NULL, *out = NULL, *cacert = NULL, *user = NULL, *pass = NULL;
    const char *resolve = NULL;
    const char *lang = "en";
    int starttls = 0, verbose = 0;
    char evid[64] = "";
    struct notify_mail_opts o = {
        .from = NULL, .to = to, .lang = NOTIFY_EN, .domain = "wp.test", .dashboard_url = ""};
    struct notify_inc m = {
        .id = 1,
        .key = "disk_full|web01",
        .priority = 2,
        .status = "open",
        .host = "web01",
        .rule = "disk_full",
        .category = "capacity",
        .summary = "Disk full on web01",
        .description = "The /var partition is almost full.",
        .runbook = "Rotate the logs, then grow the volume.",
        .values_json = "{\"used_pct\": 97.5}",
        .acked_by = "",
        .event = "open",
        .event_by = "rule",
        .event_text = "",
        .event_ms = INT64_C(1796026021000),
        .seq = 0,
        .event_id = NULL,
    };
    char *msg = NULL;
    size_t len = 0;
    int c;
    int rc;

    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'u':
            url = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'f':
            o.from = optarg;
            break;
        case 't':
            if (nto == MAX_TO) {
                usage();
            }
            to[nto++] = optarg;
            break;
        case 'l':
            lang = optarg;
            break;
        case 'd':
            o.domain = optarg;
            break;
        case 'D':
            o.dashboard_url = optarg;
            break;
        case 'i':
            m.id = strtoll(optarg, NULL, 10);
            break;
        case 's':
            m.seq = strtoll(optarg, NULL, 10);
            break;
        case 'e':
            m.event = optarg;
            break;
        case 'S':
            m.status = optarg;
            break;
        case 'p':
            m.priority = atoi(optarg);
            break;
        case 'm':
            m.summary = optarg;
            break;
        case 'h':
            m.host = optarg;
            break;
        case 'v':
            m.values_json = optarg;
            break;
        case 'E':
            m.event_id = optarg;
            break;
        case 'T':
            m.event_ms = strtoll(optarg, NULL, 10);
            break;
        case 'L':
            starttls = 1;
            break;
        case 'c':
            cacert = optarg;
            break;
        case 'U':
            user = optarg;
            break;
        case 'P':
            pass = optarg;
            break;
        case 'V':
            verbose = 1;
            break;
        case 'R':
            resolve = optarg;
            break;
        default:
            usage();
        }
    }
    if ((url == NULL) == (out == NULL) || o.from == NULL || nto == 0) {
        usage();
    }
    if (notify_lang_parse(lang, &o.lang) < 0) {
        fprintf(stderr, "mailsend: unknown language %s\n", lang);
        return 1;
    }
    if (m.event_id == NULL) {
        snprintf(evid, sizeof(evid), "mail-%" PRId64 "-%" PRId64, m.id, m.seq);
        m.event_id = evid;
    }
    m.opened_ms = m.event_ms;
    rc = notify_mail_render(&m, &o, &msg, &len);
    if (rc < 0) {
        fprintf(stderr, "mailsend: render: %s\n", strerror(-rc));
        return 1;
    }
    if (out != NULL) {
        FILE *fp = fopen(out, "wbe");
        rc = fp != NULL && fwrite(msg, 1, len, fp) == len ? 0 : 1;
        if (fp != NULL && fclose(fp) != 0) {
            rc = 1;
        }
        if (rc != 0) {
            fprintf(stderr, "mailsend: %s: %s\n", out, strerror(errno));
        }
    } else {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        rc = send_mail(url, o.from, to, msg, len, cacert, user, pass, resolve, starttls, verbose);
        curl_global_cleanup();
    }
    free(msg);
    return rc;
}
