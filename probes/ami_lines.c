/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ami probe's lines: the string map and hash index, the line table and its state
 * precedence (see ami.c), the channels that give a line its call, contact reachability, and
 * the resync of the four lists (pending snapshot, applied by ami_finish_resync).
 */
#include "ami_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "wp/clock.h"
#include "wp/mem.h"

/* Asterisk device state token -> normalised state. */
static const char *normalise(const char *raw)
{
    static const char *const map[][2] = {
        {"NOT_INUSE", "idle"},          {"INUSE", "in_use"},           {"BUSY", "busy"},
        {"UNAVAILABLE", "unavailable"}, {"RINGING", "ringing"},        {"RINGINUSE", "ringing"},
        {"ONHOLD", "on_hold"},          {"INVALID", "out_of_service"}, {"UNKNOWN", "unknown"},
    };

    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcasecmp(raw, map[i][0]) == 0) {
            return map[i][1];
        }
    }
    return "unknown";
}

/* ExtensionStatus Status (a bit mask, enum ast_extension_states) -> normalised state. */
static const char *ext_normalise(int st)
{
    if (st < 0) {
        return "unknown";
    }
    if (st & 8) {
        return "ringing"; /* Ringing, InUse&Ringing */
    }
    if (st & 16) {
        return "on_hold"; /* Hold, InUse&Hold */
    }
    if (st & 4) {
        return "unavailable";
    }
    if (st & 2) {
        return "busy";
    }
    if (st & 1) {
        return "in_use";
    }
    return "idle";
}

static int streq0(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    return strcmp(a, b) == 0;
}

void ami_set_str(char **dst, const char *src)
{
    if (streq0(*dst, src)) {
        return;
    }
    free(*dst);
    *dst = src != NULL ? wp_xstrdup(src) : NULL;
}

/* ---- hash index ---- */

typedef const char *(*ami_key_fn)(const void *tab, size_t i);

static size_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;

    for (; *s != '\0'; s++) {
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    }
    return (size_t)h;
}

static void idx_put(struct ami_idx *x, const char *k, size_t i)
{
    size_t m = x->cap - 1;
    size_t h = hash_str(k) & m;

    while (x->slot[h] != 0) {
        h = (h + 1) & m;
    }
    x->slot[h] = (uint32_t)i + 1;
}

/* Make x index the n keys of tab when it is stale or too small for n entries. */
static void idx_ensure(struct ami_idx *x, size_t n, ami_key_fn key, const void *tab)
{
    size_t cap = 64;

    if (!x->stale && x->cap > 2 * n) {
        return;
    }
    while (cap <= 2 * n) {
        cap *= 2;
    }
    if (cap != x->cap) {
        free(x->slot);
        x->slot = wp_xcalloc(cap, sizeof(*x->slot));
        x->cap = cap;
    } else {
        memset(x->slot, 0, cap * sizeof(*x->slot));
    }
    for (size_t i = 0; i < n; i++) {
        idx_put(x, key(tab, i), i);
    }
    x->stale = 0;
}

/* The position of k among the n keys of tab, or -1. */
static ssize_t idx_find(struct ami_idx *x, const char *k, size_t n, ami_key_fn key, const void *tab)
{
    size_t m = 0;
    size_t h = 0;

    idx_ensure(x, n, key, tab);
    m = x->cap - 1;
    h = hash_str(k) & m;
    while (x->slot[h] != 0) {
        size_t i = x->slot[h] - 1;
        if (strcmp(key(tab, i), k) == 0) {
            return (ssize_t)i;
        }
        h = (h + 1) & m;
    }
    return -1;
}

/* Key i of tab was just appended (tab now has n entries). */
static void idx_added(struct ami_idx *x, size_t i, size_t n, ami_key_fn key, const void *tab)
{
    if (x->stale || x->cap <= 2 * n) {
        idx_ensure(x, n, key, tab);
        return;
    }
    idx_put(x, key(tab, i), i);
}

static void idx_free(struct ami_idx *x)
{
    free(x->slot);
    memset(x, 0, sizeof(*x));
}

/* ---- string map ---- */

static const char *kv_key(const void *tab, size_t i)
{
    return ((const struct ami_kv *)tab)->k[i];
}

static ssize_t kv_find(struct ami_kv *kv, const char *k)
{
    return idx_find(&kv->idx, k, kv->n, kv_key, kv);
}

const char *ami_kv_get(struct ami_kv *kv, const char *k)
{
    ssize_t i = kv_find(kv, k);

    return i < 0 ? NULL : kv->v[i];
}

/* Set k to v (a copy); at most max entries (0 when full). Returns 1 when set. */
int ami_kv_set(struct ami_kv *kv, const char *k, const char *v, size_t max)
{
    ssize_t i = kv_find(kv, k);

    if (i >= 0) {
        ami_set_str(&kv->v[i], v);
        return 1;
    }
    if (kv->n >= max) {
        return 0;
    }
    if (kv->n == kv->cap) {
        kv->cap = kv->cap != 0 ? kv->cap * 2 : 32;
        kv->k = wp_xrealloc(kv->k, kv->cap * sizeof(*kv->k));
        kv->v = wp_xrealloc(kv->v, kv->cap * sizeof(*kv->v));
    }
    kv->k[kv->n] = wp_xstrdup(k);
    kv->v[kv->n] = wp_xstrdup(v);
    kv->n++;
    idx_added(&kv->idx, kv->n - 1, kv->n, kv_key, kv);
    return 1;
}

void ami_kv_del(struct ami_kv *kv, const char *k)
{
    ssize_t i = kv_find(kv, k);

    if (i < 0) {
        return;
    }
    free(kv->k[i]);
    free(kv->v[i]);
    kv->n--;
    kv->k[i] = kv->k[kv->n];
    kv->v[i] = kv->v[kv->n];
    kv->idx.stale = 1;
}

void ami_kv_clear(struct ami_kv *kv)
{
    for (size_t i = 0; i < kv->n; i++) {
        free(kv->k[i]);
        free(kv->v[i]);
    }
    kv->n = 0;
    kv->idx.stale = 1;
}

void ami_kv_free(struct ami_kv *kv)
{
    ami_kv_clear(kv);
    free(kv->k);
    free(kv->v);
    kv->k = NULL;
    kv->v = NULL;
    kv->cap = 0;
    idx_free(&kv->idx);
}

/* ---- the line table ---- */

static const char *line_key(const void *tab, size_t i)
{
    return ((const struct ami_table *)tab)->v[i].dev;
}

static struct ami_line *line_find(struct ami_table *t, const char *dev)
{
    ssize_t i = idx_find(&t->idx, dev, t->n, line_key, t);

    return i < 0 ? NULL : &t->v[i];
}

void ami_line_free(struct ami_line *l)
{
    free(l->dev);
    free(l->dev_raw);
    free(l->ext_raw);
    free(l->reach_raw);
    free(l->call);
    free(l->raw);
    free(l->info);
    memset(l, 0, sizeof(*l));
}

void ami_table_clear(struct ami_table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        ami_line_free(&t->v[i]);
    }
    t->n = 0;
    t->idx.stale = 1;
}

void ami_table_free(struct ami_table *t)
{
    ami_table_clear(t);
    free(t->v);
    t->v = NULL;
    t->cap = 0;
    idx_free(&t->idx);
}

/* dev's line, added (with no state yet) when create is set; NULL when absent or full. */
static struct ami_line *line_get(struct ami_ctx *c, const char *dev, int create)
{
    struct ami_table *t = &c->lines;
    struct ami_line *l = line_find(t, dev);

    if (l != NULL || !create) {
        return l;
    }
    if (strlen(dev) > AMI_DEV_MAX || dev[0] == '\0') {
        return NULL;
    }
    if (t->n >= AMI_LINES_MAX) {
        if (!c->too_many) {
            c->too_many = 1;
            WP_PLOG(c->p, WP_LOG_WARN, "more than %d devices: the rest are ignored", AMI_LINES_MAX);
        }
        return NULL;
    }
    if (t->n == t->cap) {
        t->cap = t->cap != 0 ? t->cap * 2 : 64;
        t->v = wp_xrealloc(t->v, t->cap * sizeof(*t->v));
    }
    l = &t->v[t->n++];
    memset(l, 0, sizeof(*l));
    l->dev = wp_xstrdup(dev);
    idx_added(&t->idx, t->n - 1, t->n, line_key, t);
    return l;
}

/* Work out a line's state from its sources by the precedence in the file comment; marks it
 * dirty when the state, raw state or info changed. */
static void line_eval(const struct ami_ctx *c, struct ami_line *l)
{
    const char *raw = "UNKNOWN";
    const char *state = "unknown";
    const char *info = NULL;

    if (!c->up) {
        raw = "link lost";
    } else if (l->gone) {
        raw = "not listed";
    } else {
        info = l->call;
        if (l->reach_raw != NULL) {
            raw = l->reach_raw;
            state = "unavailable";
        } else if (l->dev_raw != NULL) {
            raw = l->dev_raw;
            state = normalise(raw);
        } else if (l->ext_raw != NULL) {
            raw = l->ext_raw;
            state = ext_normalise(l->ext_status);
        }
    }
    if (l->raw == NULL || strcmp(l->raw, raw) != 0 || l->state == NULL ||
        strcmp(l->state, state) != 0 || !streq0(l->info, info)) {
        ami_set_str(&l->raw, raw);
        ami_set_str(&l->info, info);
        l->state = state;
        l->dirty = 1;
    }
}

void ami_lines_eval(struct ami_ctx *c)
{
    for (size_t i = 0; i < c->lines.n; i++) {
        line_eval(c, &c->lines.v[i]);
    }
}

/* ---- channels ---- */

static void chan_free(struct ami_chan *ch)
{
    free(ch->uid);
    free(ch->name);
    free(ch->dev);
    free(ch->cid_num);
    free(ch->cid_name);
    free(ch->conn_num);
    free(ch->conn_name);
    free(ch->state);
}

void ami_chans_clear(struct ami_chans *t)
{
    for (size_t i = 0; i < t->n; i++) {
        chan_free(&t->v[i]);
    }
    t->n = 0;
}

void ami_chans_free(struct ami_chans *t)
{
    ami_chans_clear(t);
    free(t->v);
    t->v = NULL;
    t->cap = 0;
}

static struct ami_chan *chan_find(struct ami_chans *t, const char *uid)
{
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->v[i].uid, uid) == 0) {
            return &t->v[i];
        }
    }
    return NULL;
}

/* The device of a channel: its name without the "-<hex>" sequence suffix (and a Local
 * channel's ";1"/";2"): "PJSIP/1001-0000002a" -> "PJSIP/1001". A copy. */
char *ami_chan_device(const char *name)
{
    const char *dash = strrchr(name, '-');
    size_t n = strlen(name);

    if (dash != NULL && dash != name) {
        const char *s = dash + 1;
        size_t hex = strspn(s, "0123456789abcdefABCDEF");
        if (hex > 0 &&
            (s[hex] == '\0' ||
             (s[hex] == ';' && (s[hex + 1] == '1' || s[hex + 1] == '2') && s[hex + 2] == '\0'))) {
            n = (size_t)(dash - name);
        }
    }
    return wp_xasprintf("%.*s", (int)n, name);
}

static void iso_utc(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(buf, len, "%lld", (long long)ms);
    }
}

/* Rebuild the call info of dev's line from the channels (the oldest call; "calls=N" when
 * there are more) and re-evaluate it. */
static void line_call_refresh(struct ami_ctx *c, const char *dev)
{
    struct ami_line *l = line_find(&c->lines, dev);
    const struct ami_chan *best = NULL;
    size_t n = 0;
    char buf[768];
    char when[32];
    size_t at = 0;

    if (l == NULL) {
        return;
    }
    for (size_t i = 0; i < c->chans.n; i++) {
        const struct ami_chan *ch = &c->chans.v[i];
        if (strcmp(ch->dev, dev) == 0) {
            n++;
            if (best == NULL || ch->start_ms < best->start_ms) {
                best = ch;
            }
        }
    }
    if (best == NULL) {
        free(l->call);
        l->call = NULL;
        line_eval(c, l);
        return;
    }
    buf[0] = '\0';
#define ADD(...)                                                        \
    do {                                                                \
        if (at < sizeof(buf)) {                                         \
            int k_ = snprintf(buf + at, sizeof(buf) - at, __VA_ARGS__); \
            at = k_ < 0 ? sizeof(buf) : at + (size_t)k_;                \
        }                                                               \
    } while (0)
    if (best->cid_num != NULL || best->cid_name != NULL) {
        ADD("caller=%.64s", best->cid_num != NULL ? best->cid_num : "");
        if (best->cid_name != NULL) {
            ADD(" (%.64s)", best->cid_name);
        }
        ADD(" ");
    }
    if (best->conn_num != NULL || best->conn_name != NULL) {
        ADD("connected=%.64s", best->conn_num != NULL ? best->conn_num : "");
        if (best->conn_name != NULL) {
            ADD(" (%.64s)", best->conn_name);
        }
        ADD(" ");
    }
    if (best->state != NULL) {
        ADD("state=%.32s ", best->state);
    }
    iso_utc(best->start_ms, when, sizeof(when));
    ADD("since=%s", when);
    if (n > 1) {
        ADD(" calls=%zu", n);
    }
#undef ADD
    ami_set_str(&l->call, buf);
    line_eval(c, l);
}

/* A channel field from m when m has the key ("<unknown>" or empty clears it). */
static void chan_field(char **dst, const struct wp_ami_msg *m, const char *key)
{
    if (wp_ami_get(m, key) != NULL) {
        ami_set_str(dst, ami_get_known(m, key));
    }
}

/* Add or update the channel of m (Newchannel, Newstate, CoreShowChannel) in t. start_ms is
 * used for a channel not seen before. Returns the channel or NULL. */
static struct ami_chan *chan_update(struct ami_chans *t, const struct wp_ami_msg *m,
                                    int64_t start_ms)
{
    const char *uid = wp_ami_get(m, "Uniqueid");
    const char *name = wp_ami_get(m, "Channel");
    struct ami_chan *ch = NULL;

    if (uid == NULL || uid[0] == '\0' || name == NULL || name[0] == '\0' ||
        strlen(name) > AMI_DEV_MAX) {
        return NULL;
    }
    ch = chan_find(t, uid);
    if (ch == NULL) {
        if (t->n >= AMI_CHANS_MAX) {
            return NULL;
        }
        if (t->n == t->cap) {
            t->cap = t->cap != 0 ? t->cap * 2 : 32;
            t->v = wp_xrealloc(t->v, t->cap * sizeof(*t->v));
        }
        ch = &t->v[t->n++];
        memset(ch, 0, sizeof(*ch));
        ch->uid = wp_xstrdup(uid);
        ch->start_ms = start_ms;
    }
    if (!streq0(ch->name, name)) {
        ami_set_str(&ch->name, name);
        free(ch->dev);
        ch->dev = ami_chan_device(name);
    }
    chan_field(&ch->cid_num, m, "CallerIDNum");
    chan_field(&ch->cid_name, m, "CallerIDName");
    chan_field(&ch->conn_num, m, "ConnectedLineNum");
    chan_field(&ch->conn_name, m, "ConnectedLineName");
    if (ami_get_known(m, "ChannelStateDesc") != NULL) {
        ami_set_str(&ch->state, ami_get_known(m, "ChannelStateDesc"));
    }
    return ch;
}

static void chan_remove(struct ami_chans *t, const char *uid, char **dev)
{
    struct ami_chan *ch = chan_find(t, uid);

    *dev = NULL;
    if (ch == NULL) {
        return;
    }
    *dev = ch->dev;
    ch->dev = NULL;
    chan_free(ch);
    *ch = t->v[--t->n];
}

/* "hh:mm:ss" (CoreShowChannel Duration) in ms, or -1. */
static int64_t hms_ms(const char *s)
{
    unsigned h = 0, m = 0, sec = 0;

    if (s == NULL || sscanf(s, "%u:%u:%u", &h, &m, &sec) != 3 || m > 59 || sec > 59 || h > 100000) {
        return -1;
    }
    return ((int64_t)h * 3600 + m * 60 + sec) * 1000;
}

/* ---- contacts ---- */

/* PeerStatus (Peer "PJSIP/1003") or ContactStatus (EndpointName "1003"): the last verdict
 * decides whether the device's line is unavailable (see the precedence above). */
void ami_on_contact(struct ami_ctx *c, const char *ev, const struct wp_ami_msg *m)
{
    char dev[AMI_DEV_MAX + 8];
    char key[2 * AMI_DEV_MAX + 16];
    struct ami_line *l = NULL;
    const char *verdict = NULL;

    if (strcasecmp(ev, "PeerStatus") == 0) {
        const char *peer = wp_ami_get(m, "Peer");
        const char *st = wp_ami_get(m, "PeerStatus");
        if (peer == NULL || st == NULL || strlen(peer) > AMI_DEV_MAX) {
            return;
        }
        l = line_find(&c->lines, peer);
        if (l == NULL) {
            return;
        }
        if (strcasecmp(st, "Unreachable") == 0 || strcasecmp(st, "Unregistered") == 0 ||
            strcasecmp(st, "Rejected") == 0) {
            verdict = st;
        }
        ami_set_str(&l->reach_raw, verdict);
        line_eval(c, l);
        return;
    }
    const char *ep = wp_ami_get(m, "EndpointName");
    const char *uri = wp_ami_get(m, "URI");
    const char *st = wp_ami_get(m, "ContactStatus");
    if (ep == NULL || uri == NULL || st == NULL || strlen(ep) > AMI_DEV_MAX - 6 ||
        strlen(uri) > AMI_DEV_MAX) {
        return;
    }
    snprintf(dev, sizeof(dev), "PJSIP/%s", ep);
    l = line_find(&c->lines, dev);
    if (l == NULL) {
        return;
    }
    snprintf(key, sizeof(key), "%s\x1f%s", dev, uri);
    if (strcasecmp(st, "Removed") == 0) {
        ami_kv_del(&c->contacts, key);
    } else {
        ami_kv_set(&c->contacts, key, strcasecmp(st, "Unreachable") == 0 ? "0" : "1",
                   AMI_LINES_MAX);
    }
    size_t nk = strlen(dev);
    int any = 0, ok = 0;
    for (size_t i = 0; i < c->contacts.n; i++) {
        if (strncmp(c->contacts.k[i], dev, nk) == 0 && c->contacts.k[i][nk] == '\x1f') {
            any = 1;
            ok |= c->contacts.v[i][0] == '1';
        }
    }
    if (!ok) {
        verdict = any ? "Unreachable" : "Removed";
    }
    ami_set_str(&l->reach_raw, verdict);
    line_eval(c, l);
}

/* ---- resync ---- */

void ami_sync_clear(struct ami_sync *y)
{
    ami_kv_clear(&y->devs);
    ami_kv_clear(&y->exts);
    ami_chans_clear(&y->chans);
    ami_members_clear(&y->members);
    y->done = 0;
    y->refused = 0;
    for (int i = 0; i < L_N; i++) {
        y->id[i][0] = '\0';
    }
}

void ami_sync_free(struct ami_sync *y)
{
    ami_sync_clear(y);
    ami_kv_free(&y->devs);
    ami_kv_free(&y->exts);
    ami_chans_free(&y->chans);
    ami_members_free(&y->members);
}

/* The device a hint names alone ("PJSIP/1001", "PJSIP/1001,CustomPresence:1001"), copied
 * into buf; 0 when it names several devices or none. */
static int hint_device(const char *hint, char *buf, size_t len)
{
    size_t n = strcspn(hint, ",");

    if (n == 0 || n >= len || memchr(hint, '&', n) != NULL) {
        return 0;
    }
    memcpy(buf, hint, n);
    buf[n] = '\0';
    return 1;
}

/* ExtensionStatus: a list item or an event. */
void ami_on_extension(struct ami_ctx *c, const struct wp_ami_msg *m)
{
    const char *hint = wp_ami_get(m, "Hint");
    const char *text = wp_ami_get(m, "StatusText");
    int64_t st = ami_get_int(m, "Status", -100);
    char dev[AMI_DEV_MAX + 1];
    char val[96];
    struct ami_line *l = NULL;

    if (hint == NULL || st == -100 || !hint_device(hint, dev, sizeof(dev))) {
        return;
    }
    if (text == NULL || text[0] == '\0') {
        text = "Unknown";
    }
    if (c->phase == PH_RESYNC) {
        if (st < 0) {
            ami_kv_del(&c->sync.exts, dev); /* the hint or the extension was removed */
        } else {
            snprintf(val, sizeof(val), "%d:%.64s", (int)st, text);
            ami_kv_set(&c->sync.exts, dev, val, AMI_LINES_MAX);
        }
        return;
    }
    if (c->phase != PH_LIVE) {
        return;
    }
    l = line_get(c, dev, st >= 0);
    if (l == NULL) {
        return;
    }
    if (st < 0) {
        free(l->ext_raw);
        l->ext_raw = NULL;
    } else {
        ami_set_str(&l->ext_raw, text);
        l->ext_status = (int)st;
    }
    line_eval(c, l);
}

/* Newchannel, Newstate, Hangup (and CoreShowChannel items, with list set). */
void ami_on_channel(struct ami_ctx *c, const char *ev, const struct wp_ami_msg *m, int list)
{
    int live = c->phase == PH_LIVE;
    struct ami_chans *t = live ? &c->chans : &c->sync.chans;
    char *dev = NULL;

    if (!live && c->phase != PH_RESYNC) {
        return;
    }
    if (strcasecmp(ev, "Hangup") == 0) {
        const char *uid = wp_ami_get(m, "Uniqueid");
        if (uid == NULL) {
            return;
        }
        chan_remove(t, uid, &dev);
    } else {
        int64_t start = ami_event_ms(m);
        if (list) {
            int64_t d = hms_ms(wp_ami_get(m, "Duration"));
            start = wp_clock_now_ms() - (d > 0 ? d : 0);
        }
        struct ami_chan *ch = chan_update(t, m, start);
        if (ch != NULL) {
            dev = wp_xstrdup(ch->dev);
        }
    }
    if (live && dev != NULL) {
        line_call_refresh(c, dev);
    }
    free(dev);
}

/* DeviceStateChange: a list item or an event. */
void ami_on_device_state(struct ami_ctx *c, const struct wp_ami_msg *m)
{
    const char *dev = wp_ami_get(m, "Device");
    const char *st = wp_ami_get(m, "State");

    if (dev == NULL || st == NULL) {
        return;
    }
    if (c->phase == PH_RESYNC) {
        if (strlen(dev) <= AMI_DEV_MAX && dev[0] != '\0') {
            ami_kv_set(&c->sync.devs, dev, st, AMI_LINES_MAX); /* list items and changes alike */
        }
    } else if (c->phase == PH_LIVE) {
        struct ami_line *l = line_get(c, dev, 1);
        if (l != NULL) {
            ami_set_str(&l->dev_raw, st);
            l->gone = 0;
            line_eval(c, l);
        }
    }
}

/* Every list is complete: apply the pending snapshot. */
void ami_finish_resync(struct ami_ctx *c)
{
    struct ami_sync *y = &c->sync;
    int exts_ok = !(y->refused & (1u << L_EXT));
    size_t missing = 0;

    c->up = 1;
    for (size_t i = 0; i < y->devs.n; i++) {
        struct ami_line *l = line_get(c, y->devs.k[i], 1);
        if (l != NULL) {
            ami_set_str(&l->dev_raw, y->devs.v[i]);
        }
    }
    for (size_t i = 0; exts_ok && i < y->exts.n; i++) {
        struct ami_line *l = line_get(c, y->exts.k[i], 1);
        char *end = NULL;
        long st = strtol(y->exts.v[i], &end, 10);
        if (l != NULL && end != NULL && *end == ':') {
            ami_set_str(&l->ext_raw, end + 1);
            l->ext_status = (int)st;
        }
    }
    for (size_t i = 0; i < c->lines.n; i++) {
        struct ami_line *l = &c->lines.v[i];
        if (ami_kv_get(&y->devs, l->dev) == NULL) {
            free(l->dev_raw);
            l->dev_raw = NULL;
        }
        if (exts_ok && ami_kv_get(&y->exts, l->dev) == NULL) {
            free(l->ext_raw);
            l->ext_raw = NULL;
        }
        l->gone = l->dev_raw == NULL && l->ext_raw == NULL;
        missing += (size_t)l->gone;
    }
    /* calls: the listed channels (none known when the list was refused) */
    ami_chans_clear(&c->chans);
    if (!(y->refused & (1u << L_CHAN))) {
        struct ami_chans tmp = c->chans;
        c->chans = y->chans;
        y->chans = tmp;
    }
    for (size_t i = 0; i < c->lines.n; i++) {
        free(c->lines.v[i].call);
        c->lines.v[i].call = NULL;
    }
    for (size_t i = 0; i < c->chans.n; i++) {
        struct ami_line *l = line_find(&c->lines, c->chans.v[i].dev);
        if (l != NULL && l->call == NULL) {
            line_call_refresh(c, l->dev);
        }
    }
    if (!(y->refused & (1u << L_QUEUE))) {
        ami_members_apply(c);
    }
    ami_lines_eval(c);
    ami_sync_clear(y);
    c->phase = PH_LIVE;
    c->attempts = 0;
    c->snapshot = 1;
    c->link_state = "available";
    c->link_raw = "connected";
    c->link_dirty = 1;
    WP_PLOG(c->p, WP_LOG_INFO,
            "resync done: %zu lines (%zu not listed), %zu calls, %zu queue members",
            c->lines.n - missing, missing, c->chans.n, c->members.n);
}
