/* SPDX-License-Identifier: Apache-2.0 */
/* `watchpost-agent enroll`: key and CSR, POST /api/v1/enroll with a pinned CA, write the files. */
#include "enroll.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509_crt.h>

#include "agent_conf.h"
#include "wp/err.h"
#include "wp/mem.h"
#include "wp/pki.h"

#define REPLY_MAX         (256u << 10) /* bytes of a reply we read */
#define CA_FILE_MAX       (256u << 10)
#define TOKEN_MAX         256
#define CONNECT_TIMEOUT_S 10L
#define TIMEOUT_S         30L

struct enroll_args {
    const char *conf;
    const char *collector;
    const char *token;
    const char *fingerprint;
    const char *ca_file;
    const char *server_name;
    int force;
};

struct reply {
    char *buf;
    size_t len;
    int too_big;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: watchpost-agent enroll --collector HOST:PORT --token TOKEN\n"
            "                              (--ca-fingerprint SHA256 | --ca FILE)\n"
            "                              [-c agent.yaml] [--server-name NAME] [--force]\n"
            "  --collector HOST:PORT  the collector's HTTPS server (http.listen)\n"
            "  --token TOKEN          from `watchpost enroll-token add` (\"-\": read stdin)\n"
            "  --ca-fingerprint FP    SHA-256 of the fleet CA certificate (hex, colons allowed)\n"
            "  --ca FILE              the fleet CA certificate (instead of a fingerprint)\n"
            "  --server-name NAME     the name the collector's HTTPS certificate must have\n"
            "                         (default: server_name of agent.yaml's first collector,\n"
            "                         \"watchpost-collector\" unless set there)\n"
            "  --force                replace an existing key\n"
            "Writes the key, certificate and CA to the tls: paths of agent.yaml "
            "(default\n" AGENT_CONF_DEFAULT "); the agent id is agent.id.\n");
}

static int parse(int argc, char **argv, struct enroll_args *a)
{
    enum { O_COLL = 1000, O_TOKEN, O_FP, O_CA, O_SNI, O_FORCE };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"collector", required_argument, NULL, O_COLL},
        {"token", required_argument, NULL, O_TOKEN},
        {"ca-fingerprint", required_argument, NULL, O_FP},
        {"ca", required_argument, NULL, O_CA},
        {"server-name", required_argument, NULL, O_SNI},
        {"force", no_argument, NULL, O_FORCE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch = 0;

    memset(a, 0, sizeof(*a));
    a->conf = AGENT_CONF_DEFAULT;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            a->conf = optarg;
            break;
        case O_COLL:
            a->collector = optarg;
            break;
        case O_TOKEN:
            a->token = optarg;
            break;
        case O_FP:
            a->fingerprint = optarg;
            break;
        case O_CA:
            a->ca_file = optarg;
            break;
        case O_SNI:
            a->server_name = optarg;
            break;
        case O_FORCE:
            a->force = 1;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc || a->collector == NULL || a->token == NULL ||
        (a->fingerprint == NULL) == (a->ca_file == NULL)) {
        if (optind < argc) {
            fprintf(stderr, "enroll: unexpected argument \"%s\"\n", argv[optind]);
        } else if ((a->fingerprint == NULL) == (a->ca_file == NULL)) {
            fprintf(stderr, "enroll: give the collector's CA: --ca-fingerprint or --ca "
                            "(exactly one)\n");
        } else {
            fprintf(stderr, "enroll: --collector and --token are required\n");
        }
        usage(stderr);
        return -1;
    }
    return 0;
}

/* "host:port" or "[v6]:port" into host (brackets kept for URLs) and port. */
static int split_hostport(const char *s, char *host, size_t hn, char *port, size_t pn)
{
    const char *colon = strrchr(s, ':');

    if (colon == NULL || colon == s || colon[1] == '\0' || strlen(colon + 1) >= pn ||
        (size_t)(colon - s) >= hn) {
        return -1;
    }
    for (const char *p = colon + 1; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return -1;
        }
    }
    if (s[0] == '[' ? colon[-1] != ']' : memchr(s, ':', (size_t)(colon - s)) != NULL) {
        return -1; /* an IPv6 address needs brackets */
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    snprintf(port, pn, "%s", colon + 1);
    return 0;
}

/* A fingerprint as 64 lowercase hex digits: colons, spaces and "sha256:" / "SHA256
 * Fingerprint=" prefixes are dropped. 0 or -1. */
static int norm_fingerprint(const char *in, char out[65])
{
    const char *eq = strchr(in, '=');
    size_t n = 0;

    if (eq != NULL) {
        in = eq + 1;
    } else if (strncasecmp(in, "sha256:", 7) == 0) {
        in += 7;
    }
    for (; *in != '\0'; in++) {
        char c = *in;
        if (c == ':' || c == ' ') {
            continue;
        }
        if (c >= 'A' && c <= 'F') {
            c = (char)(c - 'A' + 'a');
        }
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) || n == 64) {
            return -1;
        }
        out[n++] = c;
    }
    out[n] = '\0';
    return n == 64 ? 0 : -1;
}

static char *read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "re");
    char *buf = NULL;
    size_t n = 0;

    if (f == NULL) {
        return NULL;
    }
    buf = wp_xmalloc(max + 1);
    n = fread(buf, 1, max + 1, f);
    fclose(f);
    if (n == 0 || n > max) {
        free(buf);
        errno = n == 0 ? EINVAL : EFBIG;
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int read_token(const char *arg, char *out, size_t n)
{
    if (strcmp(arg, "-") != 0) {
        if (strlen(arg) >= n) {
            return -1;
        }
        snprintf(out, n, "%s", arg);
        return 0;
    }
    if (fgets(out, (int)n, stdin) == NULL) {
        return -1;
    }
    out[strcspn(out, "\r\n")] = '\0';
    return out[0] != '\0' ? 0 : -1;
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct reply *r = arg;
    size_t n = size * nmemb;

    if (r->len + n > REPLY_MAX) {
        r->too_big = 1;
        return 0; /* aborts the transfer */
    }
    r->buf = wp_xrealloc(r->buf, r->len + n + 1);
    memcpy(r->buf + r->len, ptr, n);
    r->len += n;
    r->buf[r->len] = '\0';
    return n;
}

/*
 * One HTTPS request to https://sni:port/path, connected to host:port. ca_pem NULL: the peer
 * is not verified (only for fetching the CA certificate, which is then checked against the
 * fingerprint). body NULL: GET. *status and *reply (free()) on success; 0 or -1 (printed).
 */
static int https(const char *host, const char *port, const char *sni, const char *path,
                 const char *ca_pem, const char *body, long *status, struct reply *reply)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hdr = NULL;
    struct curl_slist *conn = NULL;
    char ebuf[CURL_ERROR_SIZE] = "";
    char *url = NULL;
    char *to = NULL;
    int rc = -1;

    memset(reply, 0, sizeof(*reply));
    if (c == NULL) {
        fprintf(stderr, "enroll: cannot initialise libcurl\n");
        return -1;
    }
    url = wp_xasprintf("https://%s:%s%s", sni, port, path);
    to = wp_xasprintf("%s:%s:%s:%s", sni, port, host, port);
    conn = curl_slist_append(conn, to);
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "Accept: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CONNECT_TO, conn);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
#endif
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, reply);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "watchpost-agent/" WP_VERSION);
    /* the system store must not vouch for the collector: only the CA we were given */
    curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
    if (ca_pem != NULL) {
        struct curl_blob blob = {
            .data = (void *)(uintptr_t)ca_pem, .len = strlen(ca_pem), .flags = CURL_BLOB_COPY};
        curl_easy_setopt(c, CURLOPT_CAINFO, NULL);
        curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    } else {
        curl_easy_setopt(c, CURLOPT_CAINFO, NULL);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    CURLcode cr = curl_easy_perform(c);
    if (cr != CURLE_OK) {
        fprintf(stderr, "enroll: https://%s:%s%s (at %s): %s\n", sni, port, path, host,
                reply->too_big ? "reply too large"
                               : (ebuf[0] != '\0' ? ebuf : curl_easy_strerror(cr)));
        free(reply->buf);
        memset(reply, 0, sizeof(*reply));
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    rc = 0;
out:
    curl_slist_free_all(hdr);
    curl_slist_free_all(conn);
    curl_easy_cleanup(c);
    free(url);
    free(to);
    return rc;
}

/* The collector's CA from GET /api/v1/enroll/ca, accepted only if it has fingerprint fp. */
static char *fetch_ca(const char *host, const char *port, const char *sni, const char *fp)
{
    struct reply r;
    long status = 0;
    json_t *j = NULL;
    char *ca = NULL;
    char got[65];

    if (https(host, port, sni, "/api/v1/enroll/ca", NULL, NULL, &status, &r) < 0) {
        return NULL;
    }
    j = json_loadb(r.buf != NULL ? r.buf : "", r.len, 0, NULL);
    const char *pem = json_string_value(json_object_get(j, "ca"));
    if (status != 200 || pem == NULL) {
        const char *e = json_string_value(json_object_get(j, "error"));
        fprintf(stderr, "enroll: GET /api/v1/enroll/ca: HTTP %ld%s%s\n", status,
                e != NULL ? ": " : "", e != NULL ? e : "");
    } else if (wp_pki_fingerprint(pem, strlen(pem), got) < 0) {
        fprintf(stderr, "enroll: the collector's CA certificate is unreadable\n");
    } else if (strcmp(got, fp) != 0) {
        fprintf(stderr,
                "enroll: the collector's CA has fingerprint %s, not %s: refusing to send the "
                "token (wrong collector, wrong fingerprint, or someone in between)\n",
                got, fp);
    } else {
        ca = wp_xstrdup(pem);
    }
    json_decref(j);
    free(r.buf);
    return ca;
}

/* Is the certificate in ca_pem one of the certificates in bundle? */
static int ca_in_bundle(const char *ca_pem, const char *bundle, size_t blen)
{
    mbedtls_x509_crt a, b;
    int found = 0;

    mbedtls_x509_crt_init(&a);
    mbedtls_x509_crt_init(&b);
    if (mbedtls_x509_crt_parse(&a, (const unsigned char *)ca_pem, strlen(ca_pem) + 1) == 0 &&
        mbedtls_x509_crt_parse(&b, (const unsigned char *)bundle, blen + 1) >= 0) {
        for (const mbedtls_x509_crt *p = &b; p != NULL && !found; p = p->next) {
            found = p->raw.len == a.raw.len && p->raw.len > 0 &&
                    memcmp(p->raw.p, a.raw.p, a.raw.len) == 0;
        }
    }
    mbedtls_x509_crt_free(&a);
    mbedtls_x509_crt_free(&b);
    return found;
}

/* The issued certificate: for our key, CN = id, signed by ca. 0 or -1 (printed). */
static int check_issued(const char *crt_pem, const char *ca_pem, const char *key_pem,
                        const char *id)
{
    mbedtls_x509_crt crt, ca;
    mbedtls_pk_context key;
    uint32_t flags = 0;
    char cn[WP_PKI_NAME_MAX + 8];
    int rc = -1;

    mbedtls_x509_crt_init(&crt);
    mbedtls_x509_crt_init(&ca);
    mbedtls_pk_init(&key);
    snprintf(cn, sizeof(cn), "CN=%s", id);
    char subj[256];
    if (mbedtls_x509_crt_parse(&crt, (const unsigned char *)crt_pem, strlen(crt_pem) + 1) != 0 ||
        mbedtls_x509_crt_parse(&ca, (const unsigned char *)ca_pem, strlen(ca_pem) + 1) != 0) {
        fprintf(stderr, "enroll: the collector's reply holds an unreadable certificate\n");
    } else if (mbedtls_pk_parse_key(&key, (const unsigned char *)key_pem, strlen(key_pem) + 1, NULL,
                                    0) != 0 ||
               mbedtls_pk_check_pair(&crt.pk, &key) != 0) {
        fprintf(stderr, "enroll: the certificate is not for the key made here\n");
    } else if (mbedtls_x509_dn_gets(subj, sizeof(subj), &crt.subject) < 0 ||
               strcmp(subj, cn) != 0) {
        fprintf(stderr, "enroll: the certificate is for \"%s\", not %s\n", subj, cn);
    } else if (mbedtls_x509_crt_verify(&crt, &ca, NULL, NULL, &flags, NULL, NULL) != 0) {
        fprintf(stderr, "enroll: the certificate does not verify against the CA (flags %#x)\n",
                (unsigned)flags);
    } else {
        rc = 0;
    }
    mbedtls_x509_crt_free(&crt);
    mbedtls_x509_crt_free(&ca);
    mbedtls_pk_free(&key);
    return rc;
}

/* mkdir -p of path's directory, new directories 0750. */
static int mkdir_parent(const char *path)
{
    char *p = wp_xstrdup(path);
    char *slash = strrchr(p, '/');
    int rc = 0;

    if (slash != NULL && slash != p) {
        *slash = '\0';
        for (char *q = p + 1;; q++) {
            if (*q != '/' && *q != '\0') {
                continue;
            }
            char saved = *q;
            *q = '\0';
            if (mkdir(p, 0750) < 0 && errno != EEXIST) {
                rc = -errno;
                break;
            }
            *q = saved;
            if (saved == '\0') {
                break;
            }
        }
        if (rc == 0 && access(p, W_OK) != 0) {
            rc = -errno;
        }
    }
    free(p);
    return rc;
}

/* Write path atomically (tmp + fsync + rename) with mode. */
static int write_file(const char *path, const char *data, mode_t mode)
{
    char *tmp = wp_xasprintf("%s.tmp.%ld", path, (long)getpid());
    size_t len = strlen(data);
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);

    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    if (fchmod(fd, mode) < 0) {
        rc = -errno;
    }
    for (size_t off = 0; rc == 0 && off < len;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno != EINTR) {
            rc = -errno;
        } else if (n > 0) {
            off += (size_t)n;
        }
    }
    if (rc == 0 && fsync(fd) < 0) {
        rc = -errno;
    }
    if (close(fd) < 0 && rc == 0) {
        rc = -errno;
    }
    if (rc == 0 && rename(tmp, path) < 0) {
        rc = -errno;
    }
out:
    if (rc < 0) {
        (void)unlink(tmp);
    }
    free(tmp);
    return rc;
}

static int exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

int agent_enroll_main(int argc, char **argv)
{
    struct enroll_args a;
    struct wp_conf_err cerr;
    struct agent_conf *conf = NULL;
    char host[256], port[16], fp[65] = "", token[TOKEN_MAX + 2];
    char *ca_bundle = NULL, *ca_pem = NULL, *key_pem = NULL, *csr_pem = NULL, *body = NULL;
    size_t bundle_len = 0;
    struct reply r = {0};
    json_t *j = NULL;
    char err[256] = "";
    int status_code = 1;
    int rc = 0;

    token[0] = '\0';
    rc = parse(argc, argv, &a);
    if (rc != 0) {
        return rc < 0 ? 2 : 0;
    }
    if (split_hostport(a.collector, host, sizeof(host), port, sizeof(port)) < 0) {
        fprintf(stderr, "enroll: --collector wants HOST:PORT, not \"%s\"\n", a.collector);
        return 2;
    }
    if (a.fingerprint != NULL && norm_fingerprint(a.fingerprint, fp) < 0) {
        fprintf(stderr, "enroll: --ca-fingerprint wants the SHA-256 of the CA certificate, 64 "
                        "hex digits (colons allowed)\n");
        return 2;
    }
    if (read_token(a.token, token, sizeof(token)) < 0 || strlen(token) > TOKEN_MAX) {
        fprintf(stderr, "enroll: no token (or longer than %d bytes)\n", TOKEN_MAX);
        return 2;
    }
    memset(&cerr, 0, sizeof(cerr));
    rc = agent_conf_load(a.conf, &cerr, &conf);
    if (rc < 0) {
        fprintf(stderr, "%s\n", cerr.msg[0] != '\0' ? cerr.msg : wp_strerror(rc));
        goto out;
    }
    const char *id = conf->agent.id;
    /* the name the agent's own link checks too: the certificate from `ca issue --server` */
    const char *sni = a.server_name;
    if (sni == NULL) {
        sni = conf->ncollectors > 0 ? conf->collectors[0].server_name : "watchpost-collector";
    }
    if (!wp_pki_name_ok(id)) {
        fprintf(stderr, "enroll: agent.id \"%s\" cannot be a certificate name\n", id);
        goto out;
    }
    if (exists(conf->tls.key) && !a.force) {
        fprintf(stderr,
                "enroll: %s exists already: this agent has a key (use --force to replace it)\n",
                conf->tls.key);
        goto out;
    }
    /* fail before the token is spent if the files cannot be written */
    const char *paths[3] = {conf->tls.key, conf->tls.cert, conf->tls.ca};
    for (int i = 0; i < 3; i++) {
        rc = mkdir_parent(paths[i]);
        if (rc < 0) {
            fprintf(stderr, "enroll: cannot write beside %s: %s\n", paths[i], wp_strerror(rc));
            goto out;
        }
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "enroll: cannot initialise libcurl\n");
        goto out;
    }
    if (a.ca_file != NULL) {
        ca_bundle = read_file(a.ca_file, CA_FILE_MAX, &bundle_len);
        if (ca_bundle == NULL) {
            fprintf(stderr, "enroll: cannot read %s: %s\n", a.ca_file, strerror(errno));
            goto out_curl;
        }
        ca_pem = wp_xstrdup(ca_bundle);
    } else {
        ca_pem = fetch_ca(host, port, sni, fp);
        if (ca_pem == NULL) {
            goto out_curl;
        }
    }
    rc = wp_pki_csr_new(id, &key_pem, &csr_pem, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "enroll: %s\n", err);
        goto out_curl;
    }
    printf("generated an EC P-256 key and a CSR for agent %s\n", id);
    fflush(stdout);
    j = json_pack("{s:s,s:s,s:s}", "token", token, "agent", id, "csr", csr_pem);
    body = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    j = NULL;
    if (body == NULL) {
        fprintf(stderr, "enroll: cannot encode the request\n");
        goto out_curl;
    }
    long status = 0;
    rc = https(host, port, sni, "/api/v1/enroll", ca_pem, body, &status, &r);
    if (rc < 0) {
        goto out_curl;
    }
    j = json_loadb(r.buf != NULL ? r.buf : "", r.len, 0, NULL);
    if (status != 200) {
        const char *e = json_string_value(json_object_get(j, "error"));
        fprintf(stderr, "enroll: the collector refused: HTTP %ld: %s\n", status,
                e != NULL ? e : "(no reason given)");
        goto out_curl;
    }
    const char *crt = json_string_value(json_object_get(j, "certificate"));
    const char *rca = json_string_value(json_object_get(j, "ca"));
    const char *serial = json_string_value(json_object_get(j, "serial"));
    if (crt == NULL || rca == NULL) {
        fprintf(stderr, "enroll: the collector's reply has no certificate\n");
        goto out_curl;
    }
    /* the CA we write is the one we trusted: the pinned one, or one from --ca */
    char rfp[65];
    if (wp_pki_fingerprint(rca, strlen(rca), rfp) < 0 ||
        (a.fingerprint != NULL && strcmp(rfp, fp) != 0) ||
        (a.ca_file != NULL && !ca_in_bundle(rca, ca_bundle, bundle_len))) {
        fprintf(stderr, "enroll: the collector answered with a CA other than the one trusted\n");
        goto out_curl;
    }
    if (check_issued(crt, rca, key_pem, id) < 0) {
        goto out_curl;
    }
    rc = write_file(conf->tls.key, key_pem, 0600);
    if (rc == 0) {
        printf("wrote the key %s (0600)\n", conf->tls.key);
        rc = write_file(conf->tls.cert, crt, 0644);
    }
    if (rc == 0) {
        printf("wrote the certificate %s (CN=%s, serial %s)\n", conf->tls.cert, id,
               serial != NULL ? serial : "?");
        rc = write_file(conf->tls.ca, rca, 0644);
    }
    if (rc < 0) {
        fprintf(stderr, "enroll: writing the files: %s\n", wp_strerror(rc));
        goto out_curl;
    }
    printf("wrote the CA certificate %s (sha256 %s)\n", conf->tls.ca, rfp);
    printf("enrolled agent %s with the collector at %s: start the agent now\n", id, a.collector);
    status_code = 0;
out_curl:
    curl_global_cleanup();
out:
    json_decref(j);
    free(r.buf);
    if (body != NULL) {
        mbedtls_platform_zeroize(body, strlen(body)); /* it holds the token */
    }
    free(body);
    if (key_pem != NULL) {
        mbedtls_platform_zeroize(key_pem, strlen(key_pem));
    }
    free(key_pem);
    free(csr_pem);
    free(ca_pem);
    free(ca_bundle);
    mbedtls_platform_zeroize(token, sizeof(token));
    agent_conf_free(conf);
    return status_code;
}
